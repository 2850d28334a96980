"""The paper-ready report of sweeps and runs (``spikebench report``): figures, leaderboards per task,
published vs measured, ``model-index.yml`` and an ``index.md`` linking them, all from the run records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ablations.report import figures
from ablations.report.leaderboard import leaderboard, write_leaderboard
from ablations.report.model_index import model_index, write_model_index
from ablations.report.records import PRIMARY, did_not_learn, load_runs, usable
from bench.errors import ConfigError
from bench.io import write_json_atomic, write_text_atomic


def _figure(fig, out: Path, stem: str, caption: str, items: list) -> None:
    paths = figures.save(fig, out / "figures", stem)
    items.append((caption, paths))


def _read_json(path: Path) -> object:
    return json.loads(path.read_text()) if path.exists() else None


def sweep_figures(runs: pd.DataFrame, sweep: str, out: Path, items: list) -> None:
    """Bit-width, λ, training-curve and firing-rate figures of one sweep (those its axes allow)."""
    metric = PRIMARY.get(str(runs["task"].iloc[0]), "top1")
    if metric not in runs:
        return
    if "bits_w" in runs and pd.to_numeric(runs["bits_w"], errors="coerce").nunique() > 1:
        fig = figures.bits_figure(runs, metric)
        fig.axes[0].set_title(f"{sweep}: {fig.axes[0].get_title()}", fontsize=9)
        _figure(fig, out, f"bits_{sweep}", f"{sweep}: {metric} and model size against weight bits", items)
    distilled = runs[runs.get("distill.kind", pd.Series("none", index=runs.index)).astype(str) != "none"]
    if len(distilled) and pd.to_numeric(distilled["distill.weight"], errors="coerce").nunique() > 1:
        fig = figures.lambda_figure(runs, metric)
        fig.axes[0].set_title(f"{sweep}: {fig.axes[0].get_title()}", fontsize=9)
        _figure(fig, out, f"lambda_{sweep}", f"{sweep}: {metric} against the distillation weight λ", items)
    histories, x = {}, "epoch"
    for r in runs.to_dict("records"):
        h = _read_json(Path(r["run_dir"]) / "metrics.json")  # every task writes this format
        if isinstance(h, list) and h:
            x = "epoch" if "epoch" in h[0] else "iter"
            histories[f"{r['model']} {r['setting']}".strip() + f" seed={r.get('seed', '')}"] = h
    if histories:
        fig = figures.curves_figure(histories, metric, x=x)
        fig.suptitle(f"{sweep}: training curves", fontsize=9)
        per = "per epoch" if x == "epoch" else "per iteration (the metric: the final test)"
        _figure(fig, out, f"curves_{sweep}", f"{sweep}: training loss and {metric} {per}", items)
    spiking = runs[runs["spiking"].astype(bool)]
    if len(spiking):
        best = spiking.loc[pd.to_numeric(spiking[metric], errors="coerce").idxmax()]
        eff = _read_json(Path(best["run_dir"]) / "efficiency.json")
        if isinstance(eff, dict) and isinstance(eff.get("firing_rates"), list):
            title = f"{sweep} / {best['model']} {best['setting']}".strip()
            fig = figures.firing_figure(eff, title)
            caption = f"{title}: firing rate per neuron layer and time step (best spiking run of the sweep)"
            _figure(fig, out, f"firing_{sweep}", caption, items)


def build_report(
    sources: list[str | Path],
    out: str | Path,
    paper_results: str | Path | None = None,
    paper: bool = True,
    mapping: tuple | None = None,
    paper_models: bool = True,
    not_reproduced: tuple | None = None,
) -> list[Path]:
    """Write the whole report for the runs under ``sources`` into ``out``; returns the files written.
    ``mapping``: the published configurations to compare (default ``paper.paper_map()``); ``paper_models``:
    also list every registered paper-size model in ``paper_configs``; ``not_reproduced``: published rows
    listed as not reproduced (default ``paper.NOT_REPRODUCED`` with the default mapping, else none)."""
    out = Path(out)
    runs = load_runs(sources)
    good = usable(runs)
    written: list[Path] = []
    boards = []
    for task in sorted(good["task"].unique()):
        table = leaderboard(good, task)
        written += write_leaderboard(table, out, task)
        boards.append((task, len(table)))
    items: list = []
    for task in sorted(good["task"].unique()):
        rows = good[good["task"] == task]
        if "energy_mJ" in rows and rows["energy_mJ"].notna().any() and PRIMARY[task] in rows:
            fig = figures.pareto_figure(rows, PRIMARY[task])
            title = f"{task}: {PRIMARY[task]} against energy (papers' convention; hardware-aware), every run"
            _figure(fig, out, f"pareto_{task}", title, items)
    tasks_of = good.groupby("sweep")["task"].nunique()
    for (sweep, task), rows in good.groupby(["sweep", "task"], sort=True):
        rows.attrs = dict(good.attrs)
        sweep_figures(rows, str(sweep) if tasks_of[sweep] == 1 else f"{sweep}-{task}", out, items)
    written += [p for _, paths in items for p in paths]
    published, paper_note = None, ""
    if paper:
        from ablations.report.paper import (
            NOT_REPRODUCED,
            compare,
            load_published,
            paper_configs,
            paper_map,
            write_paper_tables,
        )

        if not_reproduced is None:
            not_reproduced = NOT_REPRODUCED if mapping is None else ()
        mapping = mapping or paper_map()
        try:
            published = load_published(paper_results)
        except ConfigError as err:
            paper_note = f"Published-vs-measured tables not written: {err}"
        if published is not None:
            # whole dense models are built with the OpenMMLab stack: only for a report with dense runs
            configs = paper_configs(mapping, every_paper_model=paper_models, dense=_has_dense(runs))
            table = compare(published, runs, configs, mapping, not_reproduced)
            written += write_paper_tables(table, configs, out)
    written.append(write_model_index(model_index(good, published), out / "model-index.yml"))
    excluded = runs.loc[~runs.index.isin(good.index), ["sweep", "run", "model", "status", "reason"]]
    flags = runs["flag"] if "flag" in runs else pd.Series("", index=runs.index)
    excluded = excluded.assign(
        why=[
            (f"did not learn {flags.get(i) or ''}".strip() if s == "ok" else "not finished")
            for i, s in zip(excluded.index, excluded["status"], strict=True)
        ],
        reason=excluded["reason"].fillna(""),
    )
    written.append(_index(out, boards, items, published is not None, paper_note, excluded, runs))
    _manifest(out, written)
    return written


def _has_dense(runs: pd.DataFrame) -> bool:
    """Whether any record is of a task that runs on the OpenMMLab stack."""
    from tasks import get_task

    return any(get_task(str(t)).openmmlab for t in runs["task"].dropna().unique())


def _manifest(out: Path, written: list[Path]) -> None:
    """Record the files of this report in ``manifest.json``; files of an earlier report in ``out`` that
    this one did not write again (a sweep no longer given) are removed, so the folder is one report."""
    listed = out / "manifest.json"
    now = sorted(p.relative_to(out).as_posix() for p in written)
    before = json.loads(listed.read_text()).get("files", []) if listed.exists() else []
    for stale in set(before) - set(now):
        path = (out / stale).resolve()
        if path.is_relative_to(out.resolve()):
            path.unlink(missing_ok=True)
    write_json_atomic(listed, dict(files=now))


BOARDS = {
    "classification": "timm's columns (ranked by top-1, top-5) plus T, bits, firing rate, SOPs, MACs, "
    "energy, true and paper size; mean over seeds.",
    "detection": "ranked by box AP (`bbox_mAP`, COCO 0-1 scale), with AP50, AP75, mask AP where the detector "
    "has masks, the detector and neck/head kind; parameters, MACs, SOPs, energy and size of the whole "
    "detector, and the backbone's share (%) of its parameters and energy; mean over seeds.",
    "segmentation": "ranked by mIoU (%), with mAcc, aAcc, the segmentor and neck/head kind; parameters, "
    "MACs, SOPs, energy and size of the whole segmentor (no auxiliary head), and the backbone's share (%) "
    "of its parameters and energy; mean over seeds.",
}


def _index(
    out: Path, boards: list, items: list, paper: bool, paper_note: str, excluded: pd.DataFrame, runs
) -> Path:
    sweeps = ", ".join(sorted(runs["sweep"].astype(str).unique()))
    lines = [
        "# spikebench report",
        "",
        f"Generated by `spikebench report` from {len(runs)} run records ({sweeps}). Every number below is "
        "measured by these runs unless a column says *published (paper)*.",
        "",
        "## Leaderboards",
        "",
    ]
    for task, n in boards:
        lines.append(
            f"- [{task}](leaderboard_{task}.md) ([CSV](leaderboard_{task}.csv)): {n} settings, "
            + BOARDS[task]
        )
    lines += ["", "## Figures", ""]
    for caption, paths in items:
        png, pdf = (p.relative_to(out).as_posix() for p in paths)
        lines += [f"### {caption}", "", f"![{caption}]({png})", "", f"[PDF]({pdf})", ""]
    lines += ["## Published vs measured", ""]
    if paper:
        lines += [
            "- [paper_vs_measured.md](paper_vs_measured.md) ([CSV](paper_vs_measured.csv)): each "
            "published value of a mapped paper configuration (ImageNet, CIFAR, ADE20K Semantic FPN) beside "
            "the spikebench measurement of the same model on the same dataset (parameters and size from the "
            "built model; accuracy only from runs evaluated on that dataset's full split); published dense "
            "rows of our backbones with a detector or segmentor not built here are listed as *not "
            "reproduced*, with the reason.",
            "- [paper_configs.md](paper_configs.md) ([CSV](paper_configs.csv)): parameters, true MB and "
            "paper MB of every paper configuration, built without training; dense paper configs as the "
            "whole model with its backbone / neck / head split (only in a report with dense runs: they are "
            "built with the OpenMMLab stack).",
        ]
    else:
        lines.append(paper_note)
    lines += [
        "",
        "## Model index",
        "",
        "- [model-index.yml](model-index.yml): OpenMMLab / Papers-with-Code metafile (Collections, Models "
        "with Config, Metadata, Results, Weights) of every run listed above.",
        "",
        "## Runs left out",
        "",
    ]
    if len(excluded):
        lines += [
            "Not finished, or at chance / silent (not a result):",
            "",
            excluded.to_markdown(index=False),
        ]
    else:
        lines.append("None: every run finished and learned.")
    return write_text_atomic(out / "index.md", "\n".join(lines) + "\n")


__all__ = ["build_report", "did_not_learn", "load_runs", "usable"]
