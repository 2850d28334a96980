"""``spikebench sweep run|status|retry``, ``spikebench results``, ``spikebench table`` and
``spikebench report``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from bench.errors import ConfigError

DIRTY_HELP = "write the table even when its runs ran on uncommitted code (git sha ending in -dirty)"


def _params(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--executor-param {item!r} is not allowed; allowed form: KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def _status_table(spec, root: Path) -> int:
    """``sweep status``: every point's status and reason (read-only)."""
    import pandas as pd

    from ablations.runner import point_dir
    from ablations.status import STATUSES, point_state

    rows, counts = [], dict.fromkeys(STATUSES, 0)
    headline = headline_metrics(spec.task, spec.metrics)
    for p in spec.points():
        st = point_state(point_dir(root, p))
        counts[st.status] += 1
        values = {m: _metric(st.record, m) for m in headline}
        rows.append(dict(point=p.name, **p.values, status=st.status, **values, reason=st.reason or ""))
    print(pd.DataFrame(rows).to_markdown(index=False))
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def headline_metrics(task: str, metrics: list[str]) -> list[str]:
    """The metrics a status line shows: the spec's that are the task's own (its primary one when none)."""
    from tasks import get_task

    own = get_task(task).metrics
    return [m for m in metrics if m in own] or [own[0]]


def _metric(record: dict, key: str) -> object:
    nested = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    return record.get(key, nested.get(key))


def _sweep(args: argparse.Namespace) -> int:
    from ablations.executors import make_executor
    from ablations.runner import run_sweep, sweep_dir
    from ablations.spec import load_spec

    spec = load_spec(args.spec)
    root = sweep_dir(spec, args.out)
    if args.action == "status":
        return _status_table(spec, root)
    if args.action == "remeasure":
        from ablations.remeasure import remeasure_sweep

        paths = remeasure_sweep(spec, root, args.hardware or spec.hardware, args.reuse)
        print(f"wrote {len(paths)} energy_hw records under {root}/runs/*/energy_hw/", file=sys.stderr)
        return 0
    from tasks import get_task
    from tasks.api import require_stack

    require_stack(get_task(spec.task))  # a dense sweep on a core-only setup: one line, nothing started
    executor_cfg = dict(spec.executor)
    kind = args.executor or executor_cfg.pop("kind", "local")
    executor_cfg.pop("kind", None)
    workers = args.workers or executor_cfg.pop("workers", 1)
    executor_cfg.pop("workers", None)
    span = {k: executor_cfg.pop(k) for k in ("procs_per_point", "gpus_per_point") if k in executor_cfg}
    executor_cfg.update(_params(args.executor_param))
    executor = make_executor(kind, workers, root, **span, **(executor_cfg if kind != "local" else {}))
    try:
        outcome = run_sweep(
            spec, executor, root, retry=args.action == "retry", progress=not args.quiet, wait=not args.no_wait
        )
    except KeyboardInterrupt as err:
        why = str(err) or "SIGINT"
        print(
            f"sweep {spec.name}: interrupted by {why}; running points were recorded as interrupted; "
            f"rerun the same command to resume them ({root})",
            file=sys.stderr,
        )
        return 143 if why == "SIGTERM" else 130
    states = outcome.states
    if outcome.count("ok"):
        from ablations.store import collect

        df = collect(root, hardware=spec.hardware)
        warn_not_learned(df, list(spec.axes) + (["seed"] if spec.seeds else []))
        if args.table:
            _emit_table(
                df,
                list(spec.axes),
                spec.metrics,
                spec.baseline or None,
                spec.axes,
                Path(args.table),
                spec.name,
                args.allow_dirty,
                spec.note,
            )
    counts = ", ".join(
        f"{outcome.count(s)} {s}"
        for s in ("ok", "failed", "interrupted", "corrupt", "pending")
        if s == "ok" or outcome.count(s)
    )
    busy = outcome.count("running")
    print(
        f"sweep {spec.name}: {counts}{f', {busy} running elsewhere' if busy else ''} of {len(states)} points "
        f"in {root} (this runner ran {len(outcome.ran_here)}, {len(outcome.elsewhere)} ran elsewhere)"
    )
    for name, st in states.items():
        if st.status != "ok":
            label = "running elsewhere" if st.status == "running" else st.status
            print(f"  {label} {name}: {st.reason}")
    return 0 if outcome.count("ok") == len(states) else 1


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
    allow_dirty: bool = False,
    note: str = "",
) -> None:
    """Build, print and write (CSV/MD/LaTeX) an ablation table with the spec's ``note`` (not written for
    runs of a dirty tree unless ``allow_dirty``)."""
    from ablations.tables import ablation_table, to_markdown, write_table

    table, best = ablation_table(df, axes, metrics, baseline, order)
    table.attrs["note"] = note
    print(to_markdown(table, best))
    paths = write_table(table, best, out_dir, stem=name, caption=f"Ablation {name}", allow_dirty=allow_dirty)
    print("wrote " + ", ".join(map(str, paths)), file=sys.stderr)
    if "status" in df.columns:  # rows the table leaves out are named, never dropped silently
        for _, row in df[df["status"] != "ok"].iterrows():
            print(f"table: left out {row['run']} ({row['status']}: {row.get('reason')})", file=sys.stderr)


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
    import pandas as pd

    from ablations.store import collect, write_results

    root, _ = _source(args.source, args.sweep_dir)
    df = collect(root, hardware=args.hardware)
    out = write_results(df, args.out) if args.out else None
    tasks = [t for t in df.get("task", pd.Series(dtype=str)).dropna().unique()]
    shown = [m for t in tasks for m in headline_metrics(t, [])]
    headline = list(dict.fromkeys(shown or ["top1"]))
    columns = ["run", "status", *headline, "energy_mJ", "energy_hw_mJ", "size_MB", "reason"]
    print(df[[c for c in columns if c in df.columns]].to_markdown(index=False))
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
        df = collect(root, hardware=spec.hardware if spec is not None else None)
        spec_info = json.loads((root / "spec.json").read_text()) if (root / "spec.json").exists() else {}
        if spec is not None:
            spec_info = dict(
                axes=spec.axes, baseline=spec.baseline, metrics=spec.metrics, name=spec.name, note=spec.note
            )
    axes = args.axes or list(spec_info.get("axes", {}))
    if not axes:
        raise ConfigError("table: no axes; pass --axes or a sweep folder/spec that names them")
    metrics = args.metrics or spec_info.get("metrics") or ["top1"]
    baseline = _params(args.baseline) if args.baseline else spec_info.get("baseline") or None
    order = spec_info.get("axes") if isinstance(spec_info.get("axes"), dict) else None
    out_dir = Path(args.out) if args.out else Path("results") / "tables"
    warn_not_learned(df, axes)
    name, note = spec_info.get("name", "ablation"), spec_info.get("note", "")
    _emit_table(df, axes, metrics, baseline, order, out_dir, name, args.allow_dirty, note)
    return 0


def _report(args: argparse.Namespace) -> int:
    from ablations.report import build_report

    paths = build_report(args.sources, args.out, args.paper_results, paper=not args.no_paper)
    print(f"wrote {len(paths)} files; start at {Path(args.out) / 'index.md'}")
    return 0


def _twin(args: argparse.Namespace) -> int:
    from ablations.report.twin import write_twin_report

    paths = write_twin_report(args.models, args.hardware, args.out, args.img_size, reuse=args.reuse)
    summary = json.loads(paths[-1].read_text())
    for name in args.models:
        for s in summary[name]["sweeps"]:
            cross = "none in range" if s["crossover_rate"] is None else f"{s['crossover_rate']:.4f}"
            print(
                f"{name} [{s['hardware']}]: measured rate {s['measured_rate']:.4f}, energy_hw "
                f"{s['measured_energy_hw_mJ']:.4g} mJ; twin ({s['twin_activation_bits']}-bit) "
                f"{s['twin_energy_hw_mJ']:.4g} mJ; crossover rate {cross}"
            )
    print(f"wrote {len(paths)} files under {args.out}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sweep``, ``results`` and ``table`` to the spikebench CLI."""
    s = sub.add_parser("sweep", help="run, inspect or retry an ablation sweep from a YAML spec")
    s.add_argument("action", choices=("run", "status", "retry", "remeasure"))
    s.add_argument("spec", help="sweep spec (YAML), e.g. ablations/specs/sdt_ablation_tiny.yaml")
    s.add_argument(
        "--executor", choices=("local", "submitit", "ray"), default=None, help="default: spec or local"
    )
    s.add_argument("--workers", type=int, default=None, help="points at a time (default: spec or 1)")
    s.add_argument("--executor-param", action="append", default=[], help="KEY=VALUE for submitit/ray")
    s.add_argument("--out", default=None, help="sweep folder (default runs/sweeps/<spec name>)")
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for points another runner holds: list them as running elsewhere, exit 1",
    )
    s.add_argument(
        "--table", default=None, help="after the run, write the ablation table (CSV/MD/LaTeX) here"
    )
    s.add_argument("--allow-dirty", action="store_true", help=DIRTY_HELP)
    s.add_argument(
        "--hardware", default=None, help="remeasure: energy_hw preset or YAML file (default: the spec's)"
    )
    s.add_argument("--reuse", choices=("inference", "step", "use"), default="inference", help="remeasure")
    s.set_defaults(func=_sweep)
    r = sub.add_parser("results", help="collect a sweep's run records into one table (CSV or Parquet)")
    r.add_argument("source", help="sweep folder or spec")
    r.add_argument("--sweep-dir", default=None, help="sweep folder when SOURCE is a spec with a custom --out")
    r.add_argument("--out", default=None, help="results.csv or results.parquet")
    r.add_argument(
        "--hardware",
        default=None,
        help="report energy_hw_mJ under this preset or YAML file, recomputed from each run's efficiency.json "
        "without training (default: the spec's hardware)",
    )
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
    t.add_argument("--allow-dirty", action="store_true", help=DIRTY_HELP)
    t.set_defaults(func=_table)
    rp = sub.add_parser("report", help="figures, leaderboards, published vs measured and model-index.yml")
    rp.add_argument(
        "sources", nargs="+", help="sweep folders, folders of runs, run folders (any task), eval.json folders"
    )
    rp.add_argument("--out", default="results/report", help="output folder (default results/report)")
    rp.add_argument(
        "--paper-results",
        default=None,
        help="paper_results.csv (default: ../shared/reference/ beside the repo)",
    )
    rp.add_argument("--no-paper", action="store_true", help="skip the published-vs-measured tables")
    rp.set_defaults(func=_report)
    tw = sub.add_parser(
        "twin", help="energy_hw of spiking models vs their quantized-ANN twins against the firing rate"
    )
    tw.add_argument("--models", nargs="+", default=["qsd_tiny", "sdt_tiny", "sdtv2_tiny"])
    tw.add_argument("--hardware", nargs="+", default=["45nm", "loihi"], help="presets or YAML files")
    tw.add_argument("--img-size", type=int, default=None, help="default: each model's own")
    tw.add_argument("--reuse", choices=("inference", "step", "use"), default="inference")
    tw.add_argument("--out", default="results/report", help="output folder (default results/report)")
    tw.set_defaults(func=_twin)
