"""``spikebench sweep run|status|retry``, ``spikebench results`` and ``spikebench table``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from bench.errors import ConfigError


def _params(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--executor-param {item!r} is not allowed; allowed form: KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _sweep(args: argparse.Namespace) -> int:
    from ablations.executors import make_executor
    from ablations.runner import plan, point_dir, run_sweep, sweep_dir
    from ablations.spec import load_spec

    spec = load_spec(args.spec)
    root = sweep_dir(spec, args.out)
    if args.action == "status":
        _, status = plan(spec, root)
        rows = []
        for p in spec.points():
            d = point_dir(root, p)
            result = json.loads((d / "result.json").read_text()) if (d / "result.json").exists() else {}
            rows.append(
                dict(
                    point=p.name,
                    **p.values,
                    status=status[p.name],
                    top1=result.get("top1"),
                    reason=result.get("reason"),
                )
            )
        import pandas as pd

        print(pd.DataFrame(rows).to_markdown(index=False))
        counts = {s: sum(v == s for v in status.values()) for s in ("ok", "running", "failed", "pending")}
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        return 0
    executor_cfg = dict(spec.executor)
    kind = args.executor or executor_cfg.pop("kind", "local")
    executor_cfg.pop("kind", None)
    workers = args.workers or executor_cfg.pop("workers", 1)
    executor_cfg.pop("workers", None)
    executor_cfg.update(_params(args.executor_param))
    executor = make_executor(kind, workers, root, **(executor_cfg if kind != "local" else {}))
    status = run_sweep(spec, executor, root, retry=args.action == "retry", progress=not args.quiet)
    failed = [k for k, v in status.items() if v == "failed"]
    if len(failed) < len(status):
        from ablations.store import collect

        df = collect(root)
        warn_not_learned(df, list(spec.axes) + (["seed"] if spec.seeds else []))
    if args.table and len(failed) < len(status):
        _emit_table(
            df,
            list(spec.axes),
            spec.metrics,
            spec.baseline or None,
            spec.axes,
            Path(args.table),
            spec.name,
        )
    print(
        f"sweep {spec.name}: {sum(v == 'ok' for v in status.values())} ok, {len(failed)} failed "
        f"of {len(status)} points in {root}"
    )
    for name in failed:
        reason = json.loads((root / "runs" / name / "result.json").read_text()).get("reason")
        print(f"  failed {name}: {reason}")
    return 0 if not failed else 1


def warn_not_learned(df, axes: list[str]) -> int:
    """A warning line on stderr for every finished run that did not learn; returns how many."""
    bad = df[(df["status"] == "ok") & (df["flag"].fillna("") != "")] if "flag" in df.columns else df[:0]
    for _, row in bad.iterrows():
        where = ", ".join(f"{a}={row[a]}" for a in axes if a in row)
        print(f"warning: run {row['run']} ({where}) did not learn: {row['flag']}", file=sys.stderr)
    return len(bad)


def _emit_table(
    df,
    axes: list[str],
    metrics: list[str],
    baseline: dict | None,
    order: dict | None,
    out_dir: Path,
    name: str,
) -> None:
    """Build, write (CSV/MD/LaTeX) and print an ablation table."""
    from ablations.tables import ablation_table, to_markdown, write_table

    table, best = ablation_table(df, axes, metrics, baseline, order)
    paths = write_table(table, best, out_dir, stem=name, caption=f"Ablation {name}")
    print(to_markdown(table, best))
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)


def _source(path: str, out: str | None) -> tuple[Path | None, object]:
    """(sweep folder, spec or None) from a spec file or a sweep folder."""
    p = Path(path)
    if p.is_file() and p.suffix in (".yaml", ".yml"):
        from ablations.runner import sweep_dir
        from ablations.spec import load_spec

        spec = load_spec(p, validate_models=False)
        return sweep_dir(spec, out), spec
    return p, None


def _results(args: argparse.Namespace) -> int:
    from ablations.store import collect, write_results

    root, _ = _source(args.source, args.sweep_dir)
    df = collect(root)
    out = write_results(df, args.out) if args.out else None
    print(
        df[[c for c in ("run", "status", "top1", "energy_mJ", "size_MB") if c in df.columns]].to_markdown(
            index=False
        )
    )
    if out:
        print(f"wrote {out} ({len(df)} runs)", file=sys.stderr)
    return 0


def _table(args: argparse.Namespace) -> int:
    import pandas as pd

    from ablations.store import collect

    src = Path(args.source)
    spec_info: dict = {}
    if src.suffix in (".csv", ".parquet"):
        df = pd.read_csv(src) if src.suffix == ".csv" else pd.read_parquet(src)
    else:
        root, spec = _source(args.source, args.sweep_dir)
        df = collect(root)
        spec_info = json.loads((root / "spec.json").read_text()) if (root / "spec.json").exists() else {}
        if spec is not None:
            spec_info = dict(axes=spec.axes, baseline=spec.baseline, metrics=spec.metrics, name=spec.name)
    axes = args.axes or list(spec_info.get("axes", {}))
    if not axes:
        raise ConfigError("table: no axes; pass --axes or a sweep folder/spec that names them")
    metrics = args.metrics or spec_info.get("metrics") or ["top1"]
    baseline = _params(args.baseline) if args.baseline else spec_info.get("baseline") or None
    order = spec_info.get("axes") if isinstance(spec_info.get("axes"), dict) else None
    out_dir = Path(args.out) if args.out else Path("results") / "tables"
    warn_not_learned(df, axes)
    _emit_table(df, axes, metrics, baseline, order, out_dir, spec_info.get("name", "ablation"))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep``, ``results`` and ``table`` to the spikebench CLI."""
    s = sub.add_parser("sweep", help="run, inspect or retry an ablation sweep from a YAML spec")
    s.add_argument("action", choices=("run", "status", "retry"))
    s.add_argument("spec", help="sweep spec (YAML), e.g. ablations/specs/sdt_ablation_tiny.yaml")
    s.add_argument(
        "--executor", choices=("local", "submitit", "ray"), default=None, help="default: spec or local"
    )
    s.add_argument("--workers", type=int, default=None, help="points at a time (default: spec or 1)")
    s.add_argument("--executor-param", action="append", default=[], help="KEY=VALUE for submitit/ray")
    s.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<spec name>)")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.add_argument(
        "--table", default=None, help="after the run, write the ablation table (CSV/MD/LaTeX) here"
    )
    s.set_defaults(func=_sweep)
    r = sub.add_parser("results", help="collect a sweep's run records into one table (CSV or Parquet)")
    r.add_argument("source", help="sweep folder or spec")
    r.add_argument("--sweep-dir", default=None, help="sweep folder when SOURCE is a spec with a custom --out")
    r.add_argument("--out", default=None, help="results.csv or results.parquet")
    r.set_defaults(func=_results)
    t = sub.add_parser("table", help="paper-ready ablation table (CSV, Markdown, LaTeX)")
    t.add_argument("source", help="spec, sweep folder, or results CSV/Parquet")
    t.add_argument("--sweep-dir", default=None)
    t.add_argument("--axes", nargs="*", default=None, help="row settings (default: the spec's axes)")
    t.add_argument("--metrics", nargs="*", default=None, help="columns (default: the spec's metrics)")
    t.add_argument(
        "--baseline", nargs="*", default=None, help="AXIS=VALUE ... (default: the spec's baseline)"
    )
    t.add_argument("--out", default=None, help="output folder (default results/tables)")
    t.set_defaults(func=_table)
