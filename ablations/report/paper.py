"""Published vs measured: rows of ``paper_results.csv`` joined with spikebench runs through an explicit
mapping (no fuzzy matching), and the parameter count and size of every paper configuration (built on
PyTorch's meta device: no training, no weights).

A published number is only ever compared with a run on the same dataset (a run on generated data never
stands in for ImageNet); the columns say which number is published and which is measured. Published dense
rows of our backbones with a detector or segmentor spikebench does not build (SSDLite, PSPNet, DeepLabv3,
Mask R-CNN 1x on a 4-level FPN, DETR) are listed as not reproduced, with the reason. The mapping is
data: ``paper_map.yaml`` beside this file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from bench.errors import ConfigError
from bench.io import write_text_atomic

PAPER_RESULTS_ENV = "SPIKEBENCH_PAPER_RESULTS"
PUBLISHED = "published (paper)"
MEASURED = "measured (spikebench)"
DELTA = "Δ (measured − published)"
NOT_REPRODUCED_MARK = "not reproduced"


@dataclass(frozen=True)
class PaperConfig:
    """One published configuration (``model``/``variant`` of paper_results.csv, exact strings) and the
    spikebench model that reproduces it. ``overrides`` build it; ``match`` are the values a run must have
    (run-table columns) to count as a measurement of it; ``datasets`` limits the CSV rows."""

    model: str
    variant: str
    name: str
    overrides: dict = field(default_factory=dict)
    match: dict = field(default_factory=dict)
    datasets: tuple[str, ...] = ("ImageNet-1K",)
    note: str = ""
    dense: dict | None = None  # the task config of a detection / segmentation paper config (built, counted)
    params: str = "parameters (M)"  # what the published params_m counts (label of the compared row)


@dataclass(frozen=True)
class NotReproduced:
    """A published row of one of our backbones that spikebench cannot measure, and why."""

    model: str
    variant: str
    name: str
    reason: str


def _imagenet_rows() -> tuple[PaperConfig, ...]:
    """The ImageNet-1K row of every model, from the one model -> row table of ``spikebench eval``
    (the classification task's ``paper_rows``); SDT models are measured at T = 4 unless the row says T = 1."""
    from tasks import get_task

    out = []
    for name, (model, variant) in get_task("classification").paper_rows().items():
        match = {"T": 4} if name.startswith("sdt") else {}
        if name == "sdt_8_768":
            match["resolution"] = 288
        if name == "sdt_8_512":  # published at T = 1 and T = 4
            out.append(PaperConfig(model, variant, name, {"T": 1}, {"T": 1}))
        out.append(PaperConfig(model, variant, name, match=match, note=NOTES.get(name, "")))
    return tuple(out)


def _paper_config(d: dict) -> PaperConfig:
    return PaperConfig(**{k: tuple(v) if k == "datasets" else v for k, v in d.items()})


MAP_FILE = Path(__file__).with_name("paper_map.yaml")
_MAP = yaml.safe_load(MAP_FILE.read_text())
NOTES: dict[str, str] = _MAP["notes"]
EXTRA_ROWS = tuple(_paper_config(d) for d in _MAP["extra_rows"])
DENSE_ROWS = tuple(_paper_config(d) for d in _MAP["dense_rows"])
NOT_REPRODUCED = tuple(NotReproduced(**d) for d in _MAP["not_reproduced"])
METRICS = {k: tuple(v) for k, v in _MAP["metrics"].items()}  # metric -> (run column, factor, label)
DATASETS = {(d["task"], d["classes"]): (d["name"], d["images"]) for d in _MAP["datasets"]}


def paper_map() -> tuple[PaperConfig, ...]:
    """Every published configuration compared: the ImageNet rows of the classification task's
    ``paper_rows``, and the extra and dense rows of ``paper_map.yaml``."""
    return _imagenet_rows() + EXTRA_ROWS + DENSE_ROWS


GENERATED_MARK = "spikebench_dataset.json"  # written by bench.data.generate


def default_path() -> Path:
    """``../shared/reference/paper_results.csv`` beside the checkout (or beside its worktree folder);
    ``$SPIKEBENCH_PAPER_RESULTS`` overrides."""
    if os.environ.get(PAPER_RESULTS_ENV):
        return Path(os.environ[PAPER_RESULTS_ENV])
    repo = Path(__file__).resolve().parents[2]
    for base in (repo.parent, repo.parent.parent):
        path = base / "shared" / "reference" / "paper_results.csv"
        if path.exists():
            return path
    return repo.parent / "shared" / "reference" / "paper_results.csv"


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """paper_results.csv (one row per published value)."""
    path = Path(path) if path is not None else default_path()
    if not path.exists():
        raise ConfigError(
            f"{path}: published results not found; pass --paper-results or set ${PAPER_RESULTS_ENV}"
        )
    return pd.read_csv(path)


def run_dataset(row: pd.Series) -> str:
    """The dataset of a run in paper_results.csv's names, or its own ``data`` when it is not one of them
    (generated data, a subset: another number of evaluation images than the published split)."""
    data = str(row.get("data", ""))
    if data.startswith("generated:") or data == "nan":
        return data
    if any((Path(data) / up / GENERATED_MARK).exists() for up in (".", "..")):
        return data
    classes = row.get("classes")
    key = (
        row.get("task"),
        int(classes) if pd.notna(classes) and row.get("task") == "classification" else None,
    )
    name, images = DATASETS.get(key, (data, None))
    found = pd.to_numeric(row.get("eval_images"), errors="coerce")
    return name if images is not None and found == images else data


def _selected(published: pd.DataFrame, cfg: PaperConfig) -> pd.DataFrame:
    rows = published[
        (published["model"] == cfg.model)
        & (published["variant"].fillna("") == cfg.variant)
        & published["dataset"].isin(cfg.datasets)
    ]
    if cfg.match.get("T") is not None and rows["timesteps"].notna().any():
        rows = rows[rows["timesteps"].isna() | (rows["timesteps"] == cfg.match["T"])]
    return rows


def _runs_of(runs: pd.DataFrame, cfg: PaperConfig, dataset: str) -> pd.DataFrame:
    if runs is None or runs.empty:
        return pd.DataFrame()
    ok = runs[(runs["model"] == cfg.name) & (runs["status"] == "ok")]
    for col, value in cfg.match.items():
        if col not in ok:
            return ok.iloc[:0]
        got = ok[col].astype(str) if isinstance(value, str) else pd.to_numeric(ok[col], errors="coerce")
        ok = ok[got == value]
    return ok[[run_dataset(r) == dataset for _, r in ok.iterrows()]]


def paper_configs(
    mapping: tuple[PaperConfig, ...] | None = None, every_paper_model: bool = True, dense: bool = True
) -> pd.DataFrame:
    """Parameters, true MB and paper MB of every mapped configuration (and, with ``every_paper_model``,
    of every registered paper-size model), built on the meta device; ``config`` = ``classifier`` (the
    registry model), or, with ``dense``, the dense paper config (whole model, split into backbone / neck /
    head; built with the OpenMMLab stack)."""
    import torch

    from bench.measure.size import model_size, param_summary
    from bench.registry import create_model, list_models, model_entry

    rows, seen = [], {}
    mapping = paper_map() if mapping is None else mapping
    todo = [(c.name, c.overrides) for c in mapping]
    todo += [(n, {}) for n in list_models(tiny=False)] if every_paper_model else []
    for name, overrides in todo:
        key = (name, tuple(sorted(overrides.items())))
        if key not in seen:
            with torch.device("meta"):
                model = create_model(name, **overrides)
            size, params = model_size(model), param_summary(model)
            seen[key] = dict(
                params_M=params["total"] / 1e6,
                size_MB=size["true_mb"],
                size_MB_paper=size["paper_mb"],
                bits_w=size["bits_w"],
                T=getattr(model, "T", None),
            )
            rows.append(
                dict(
                    model=name,
                    overrides=" ".join(f"{k}={v}" for k, v in overrides.items()),
                    config="classifier",
                    family=model_entry(name).family,
                    **seen[key],
                    params_M_registry=model_entry(name).paper.get("params_m"),
                    mapped=any(c.name == name for c in mapping),
                )
            )
    wholes = {json.dumps(c.dense, sort_keys=True): c for c in mapping if c.dense} if dense else {}
    rows += [_dense_config(c) for c in wholes.values()]
    return pd.DataFrame(rows)


def dense_label(dense: dict) -> str:
    """``semfpn paper`` of a dense task config."""
    arch = dense.get("segmentor") or dense.get("detector")
    return f"{arch} {dense.get('size', 'tiny')}"


def _dense_config(cfg: PaperConfig) -> dict:
    """Whole-model parameters and size of a dense paper config, with the backbone / neck / head split."""
    from bench.measure.size import model_size
    from bench.registry import model_entry
    from tasks import get_task

    task = get_task("segmentation" if "segmentor" in cfg.dense else "detection")
    if task.build_untrained is None:
        raise ConfigError(f"{task.name}: no model can be built without data for {dense_label(cfg.dense)}")
    whole = task.build_untrained(cfg.dense)
    whole.auxiliary_head = None  # training-only: not in the inference model (tasks.openmm.measure)
    size = model_size(whole)
    parts = {
        f"{part}_params_M": sum(p.numel() for p in getattr(whole, part).parameters()) / 1e6
        for part in ("backbone", "neck", "head")
        if getattr(whole, part) is not None
    }
    return dict(
        model=cfg.name,
        overrides=" ".join(f"{k}={v}" for k, v in cfg.overrides.items()),
        config=dense_label(cfg.dense),
        family=model_entry(cfg.name).family,
        params_M=sum(parts.values()),
        size_MB=size["true_mb"],
        size_MB_paper=size["paper_mb"],
        bits_w=size["bits_w"],
        T=getattr(whole, "T", None),
        params_M_registry=model_entry(cfg.name).paper.get("params_m"),
        mapped=True,
        **parts,
    )


def _items(sel: pd.DataFrame) -> list[tuple[dict, str, float]]:
    """(CSV row, metric, published value): the row's own metric, plus its parameter count and energy."""
    rows = sel.to_dict("records")
    items = [(r, r["metric"], r["value"]) for r in rows if r["metric"] in METRICS]
    # QSD's 'params' column holds its 32-bit-equivalent size (params_reported), not a parameter count
    with_params = [r for r in rows if pd.notna(r["params_m"])]
    if with_params and not any(r["metric"] == "params_reported" for r in rows):
        items.append((with_params[0], "params_m", float(with_params[0]["params_m"])))
    items += [(r, "energy_mj", float(r["energy_mj"])) for r in rows if pd.notna(r["energy_mj"])]
    return items


def compare(
    published: pd.DataFrame,
    runs: pd.DataFrame | None,
    configs: pd.DataFrame,
    mapping: tuple[PaperConfig, ...] | None = None,
    not_reproduced: tuple[NotReproduced, ...] = (),
) -> pd.DataFrame:
    """One row per (published value, mapped configuration): published, measured (mean of the matching
    runs on the same dataset, or the built model for parameters and size), Δ and where each comes from;
    then the rows of ``not_reproduced`` with the reason in 'measured by' and no measured value."""
    mapping = paper_map() if mapping is None else mapping
    classifiers = configs[configs["config"] == "classifier"] if "config" in configs else configs
    built = {(r["model"], r["overrides"]): r for r in classifiers.to_dict("records")}
    out = []
    for cfg in mapping:
        tag = " ".join(f"{k}={v}" for k, v in cfg.overrides.items())
        b = built[(cfg.name, tag)]
        shown = f"{cfg.name} {tag}".strip() + (f" ({dense_label(cfg.dense)})" if cfg.dense else "")
        for r, metric, value in _items(_selected(published, cfg)):
            column, factor, what = METRICS[metric]
            what = cfg.params if metric == "params_m" else what
            measured, by, n, std = None, "no run on this dataset", 0, None
            if column in ("params_M", "size_MB_paper"):
                measured, by, n = b[column], "built model (no training)", 1
            else:
                found = _runs_of(runs, cfg, r["dataset"])
                vals = (
                    pd.to_numeric(found[column], errors="coerce").dropna() * factor if column in found else []
                )
                if len(vals):
                    measured, n = float(vals.mean()), len(vals)
                    std = float(vals.std()) if n > 1 else None
                    by = ", ".join(found.loc[vals.index, "run"].astype(str))
            delta = None if measured is None else measured - value
            out.append(_row(r, what, value, (measured, std, delta), shown, by, n, cfg.note))
    for nr in not_reproduced:
        rows = published[(published["model"] == nr.model) & (published["variant"].fillna("") == nr.variant)]
        for r in rows.to_dict("records"):
            what = METRICS[r["metric"]][2] if r["metric"] in METRICS else r["metric"]
            reason = f"{NOT_REPRODUCED_MARK}: {nr.reason}"
            out.append(_row(r, what, r["value"], (None, None, None), nr.name, reason, 0, ""))
    return pd.DataFrame(out)


def _row(r: dict, what: str, value: float, numbers: tuple, shown: str, by: str, n: int, note: str) -> dict:
    """One row of the comparison: the published row ``r`` beside ``numbers`` = (measured, std, delta)."""
    measured, std, delta = numbers
    return {
        "paper": r["paper"],
        "source table": r["source_table"],
        "dataset": r["dataset"],
        "published model": r["model"],
        "variant": r["variant"],
        "metric": what,
        PUBLISHED: value,
        MEASURED: measured,
        "measured std": std,
        DELTA: delta,
        "spikebench model": shown,
        "measured by": by,
        "runs": n,
        "note": note,
    }


def _shown(df: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None (Markdown shows them as —, not nan)."""
    return df.astype(object).where(df.notna(), None)


def write_paper_tables(comparison: pd.DataFrame, configs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """``paper_vs_measured.{csv,md}`` and ``paper_configs.{csv,md}``."""
    out_dir = Path(out_dir)
    heading = (
        f"Published numbers are copied from the papers (column '{PUBLISHED}'); '{MEASURED}' is measured "
        "by spikebench (a run on the same dataset with the same number of evaluation images, or the built "
        "model for parameters and size); Δ = measured − published. Box and mask AP are on COCO's 0-100 "
        "scale (spikebench records 0-1, multiplied by 100). The metric column says what a parameter count "
        "counts: the dense rows' published params are their backbone as its ImageNet classifier, compared "
        "with that model (the whole segmentor is in paper_configs.md). Rows whose 'measured by' starts with "
        f"'{NOT_REPRODUCED_MARK}' are published results of our backbones with a detector or segmentor "
        "spikebench does not build: listed, never measured. Baseline rows of other backbones (MobileNet, "
        "ResNet, VGG, MixNet, MNASNet) and MobileViT v3 (not a spikebench model) are not listed.\n\n"
    )
    classifier = configs["config"] == "classifier" if "config" in configs else True
    ratio = 100 * (configs["params_M"] / configs["params_M_registry"] - 1)
    cfg = configs.assign(**{"Δ params (%)": ratio.where(classifier)})
    return [
        write_text_atomic(out_dir / "paper_vs_measured.csv", comparison.to_csv(index=False)),
        write_text_atomic(
            out_dir / "paper_vs_measured.md",
            heading + _shown(comparison).to_markdown(index=False, floatfmt=".4g", missingval="—") + "\n",
        ),
        write_text_atomic(out_dir / "paper_configs.csv", cfg.to_csv(index=False)),
        write_text_atomic(
            out_dir / "paper_configs.md",
            "Every paper configuration built on the meta device (no training): parameters, true MB "
            "(packed low-bit weights + fp32 rest) and paper MB (params x bits/32); `params_M_registry` is "
            "the published count recorded in the model registry (of the classifier; Δ params only on "
            "`classifier` rows). Dense rows (`config` = segmentor and size) are the whole inference model "
            "of that paper config (backbone + neck + head, without a training-only auxiliary head) with the "
            "part counts beside it.\n\n"
            + _shown(cfg).to_markdown(index=False, floatfmt=".4g", missingval="—")
            + "\n",
        ),
    ]
