"""Report figures, one function per kind, each returning a matplotlib ``Figure`` (no pyplot state).

Inputs are the tidy run table of ``ablations.report.records.load_runs`` (finished runs that learned); runs
that differ only by seed are one setting drawn as mean ± standard deviation (error bars when n > 1).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import cm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablations.report.records import setting_label
from ablations.table_format import natural_key
from ablations.tables import LABELS
from bench.io import atomic_path

MARKERS = {True: "o", False: "s"}  # spiking: circle, ANN: square


def label(col: str) -> str:
    """Axis label of a column (the table labels, else the column name)."""
    return LABELS.get(
        col, {"distill.weight": "λ (distillation weight)", "bits_w": "Weight bits"}.get(col, col)
    )


def aggregate(
    df: pd.DataFrame, x: str, y: str, exclude: tuple[str, ...] = (), x_measured: bool = False
) -> pd.DataFrame:
    """Mean, std and count of ``y`` per (setting, ``x``); the setting excludes the seed, ``x`` and
    ``exclude``. ``x_measured``: ``x`` is a measurement (energy), averaged per setting instead of grouped
    on. Also carries the first ``model``, ``family``, ``spiking``, ``params_M`` of each group."""
    d = df.assign(series=setting_label(df, exclude=(x, *exclude)).to_numpy())
    d = d.assign(**{y: pd.to_numeric(d[y], errors="coerce"), x: pd.to_numeric(d[x], errors="coerce")})
    keep = {c: "first" for c in ("model", "family", "spiking", "params_M") if c in d}
    if x_measured:
        keep[x] = "mean"
    out = d.groupby(["series"] if x_measured else ["series", x], sort=True).agg(
        mean=(y, "mean"), std=(y, "std"), n=(y, "size"), **{k: (k, v) for k, v in keep.items()}
    )
    return out.reset_index()


def _errorbars(ax, g: pd.DataFrame, x: str, **kw) -> None:
    yerr = g["std"].where(g["n"] > 1).fillna(0).to_numpy() if (g["n"] > 1).any() else None
    ax.errorbar(g[x], g["mean"], yerr=yerr, capsize=3 if yerr is not None else 0, **kw)


def pareto_front(cost: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (lower cost, higher value), by increasing cost."""
    order = np.lexsort((-value, cost))
    front, best = [], -np.inf
    for i in order:
        if value[i] > best:
            front.append(i)
            best = value[i]
    return np.array(front, dtype=int)


def pareto_figure(
    df: pd.DataFrame, metric: str = "top1", cost: str | tuple[str, ...] = ("energy_mJ", "energy_hw_mJ")
) -> Figure:
    """``metric`` against each ``cost`` (one panel per energy definition: the papers' and the hardware-aware
    one): marker size = parameters, circles = spiking, squares = ANN, one series per family and kind, error
    bars over seeds, and the Pareto front (its points numbered, their settings listed under the panel).
    Costs missing from ``df`` get no panel."""
    costs = [c for c in ((cost,) if isinstance(cost, str) else cost) if c in df and df[c].notna().any()]
    costs = costs or [cost if isinstance(cost, str) else cost[0]]
    fig = Figure(figsize=(6.4 * len(costs), 4.4), layout="constrained")
    grid = fig.add_gridspec(2, len(costs))
    lines = 1
    for i, c in enumerate(costs):
        key = _pareto_panel(fig.add_subplot(grid[0, i]), df, metric, c)
        below = fig.add_subplot(grid[1, i])
        below.axis("off")
        below.text(0, 1, key, transform=below.transAxes, va="top", fontsize=6)
        lines = max(lines, key.count("\n") + 1)
    key_height = 0.11 * lines + 0.1  # inches: 6 pt lines
    fig.set_size_inches(6.4 * len(costs), 4.4 + key_height)
    grid.set_height_ratios([4.4, key_height])
    return fig


def _pareto_panel(ax, df: pd.DataFrame, metric: str, cost: str) -> str:
    """Draw one panel; returns the key of its numbered Pareto-front points."""
    agg = aggregate(df.assign(_cost=df[cost]), "_cost", metric, exclude=(cost,), x_measured=True)
    agg = agg.dropna(subset=["_cost", "mean"])
    biggest = max(float(agg["params_M"].max()), 1e-9)
    for (family, spiking), g in agg.groupby(["family", "spiking"], sort=True):
        kind = "spiking" if spiking else "ANN"
        _errorbars(ax, g, "_cost", fmt="none", ecolor="0.5", elinewidth=0.8)
        ax.scatter(
            g["_cost"],
            g["mean"],
            s=30 + 370 * g["params_M"] / biggest,
            marker=MARKERS[bool(spiking)],
            alpha=0.75,
            edgecolors="k",
            label=f"{family} ({kind})",
        )
    front = pareto_front(agg["_cost"].to_numpy(), agg["mean"].to_numpy())
    key = []
    if len(front):
        f = agg.iloc[front]
        ax.plot(f["_cost"], f["mean"], "k--", drawstyle="steps-post", lw=1, label="Pareto front")
        for i, (_, r) in enumerate(f.iterrows(), 1):
            ax.annotate(
                str(i), (r["_cost"], r["mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        key = [
            textwrap.fill(f"{i}: {s}", 110, subsequent_indent="    ") for i, s in enumerate(f["series"], 1)
        ]
    if agg["_cost"].min() > 0 and agg["_cost"].max() / agg["_cost"].min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(label(cost))
    ax.set_ylabel(label(metric))
    ax.set_title(f"{label(metric)} vs {label(cost)} (marker area = parameters)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return "Pareto front, from the cheapest:\n" + "\n".join(key) if key else ""


def bits_figure(df: pd.DataFrame, metric: str = "top1") -> Figure:
    """``metric`` against weight bits (one line per setting, error bars over seeds), with the true-MB and
    paper-MB sizes of each model on a second axis."""
    d = df.assign(bits_w=pd.to_numeric(df["bits_w"], errors="coerce"))
    agg = aggregate(d, "bits_w", metric, exclude=("bits", "bits_first", "bits_head"))
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for series, g in agg.groupby("series", sort=True):
        _errorbars(ax, g, "bits_w", marker="o", label=series)
    size = ax.twinx()
    for model, g in d.groupby("model", sort=True):
        s = g.groupby("bits_w")[["size_MB", "size_MB_paper"]].mean()
        size.plot(s.index, s["size_MB"], ls="--", marker="^", color="0.35", label=f"{model} true MB")
        size.plot(s.index, s["size_MB_paper"], ls=":", marker="v", color="0.6", label=f"{model} paper MB")
    ax.set_xscale("log", base=2)
    ticks = sorted(agg["bits_w"].dropna().unique())
    ax.set_xticks(ticks, [str(int(t)) for t in ticks])
    ax.set_xlabel(label("bits_w"))
    ax.set_ylabel(label(metric))
    size.set_ylabel("Size (MB; true and paper convention)")
    ax.set_title(f"{label(metric)} and model size vs weight bits")
    lines = ax.get_legend_handles_labels()
    more = size.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def lambda_figure(df: pd.DataFrame, metric: str = "top1") -> Figure:
    """``metric`` against the distillation weight λ of distilled runs (one line per setting)."""
    d = df[df["distill.kind"].astype(str) != "none"]
    agg = aggregate(d, "distill.weight", metric)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for series, g in agg.groupby("series", sort=True):
        _errorbars(ax, g, "distill.weight", marker="o", label=series)
    ax.set_xlabel(label("distill.weight"))
    ax.set_ylabel(label(metric))
    kinds = ", ".join(sorted(d["distill.kind"].astype(str).unique()))
    ax.set_title(f"{label(metric)} vs λ ({kinds} distillation)")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return fig


def firing_figure(efficiency: dict, title: str) -> Figure:
    """Per-layer firing rates of one model (``efficiency.json``): a heat map over neuron layers and time
    steps, and bars of each layer's mean rate and non-zero rate."""
    rows = efficiency.get("firing_rates")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{title}: no per-layer firing rates in the record (not a spiking model)")
    table = pd.DataFrame(rows)
    rates = np.array(table["fr_per_t"].tolist(), dtype=float)
    fig = Figure(figsize=(8.0, 0.5 + 0.18 * len(table)), layout="constrained")
    heat, bars = fig.subplots(1, 2, sharey=True, width_ratios=(1, 2))
    im = heat.imshow(rates, aspect="auto", cmap="viridis", interpolation="nearest")
    heat.set_xticks(range(rates.shape[1]), [str(t + 1) for t in range(rates.shape[1])])
    heat.set_xlabel("Time step")
    heat.set_yticks(range(len(table)), table["neuron"].tolist(), fontsize=6)
    fig.colorbar(im, ax=heat, label="Firing rate (spikes per element per step)")
    y = np.arange(len(table))
    bars.barh(y - 0.2, table["fr"], height=0.4, label="firing rate")
    bars.barh(y + 0.2, table["nonzero"], height=0.4, label="non-zero rate")
    bars.set_xlabel("Rate (mean over steps)")
    bars.legend(fontsize=7)
    fig.suptitle(f"Firing rate per layer and step: {title}", fontsize=9)
    return fig


def curves_figure(histories: dict[str, list[dict]], metric: str = "top1", x: str = "epoch") -> Figure:
    """Training loss and ``metric`` against ``x`` (``metrics.json``), one line per run; runs named
    ``<setting> seed=<n>`` share their setting's colour and one legend entry (under the panels)."""
    names = sorted(histories, key=natural_key)
    settings = list(dict.fromkeys(name.rsplit(" seed=", 1)[0] for name in names))
    colours = {s: f"C{i % 10}" if len(settings) <= 10 else cm.tab20(i % 20) for i, s in enumerate(settings)}
    styles = {s: ("-", "--", ":")[(i // 20) % 3] for i, s in enumerate(settings)}
    fig = Figure(figsize=(9.0, 3.8 + 0.13 * math.ceil(len(settings) / 2)), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    handles = {}
    for name in names:
        h = pd.DataFrame(histories[name])
        setting = name.rsplit(" seed=", 1)[0]
        style = dict(marker=".", color=colours[setting], ls=styles[setting], lw=1)
        if x not in h:
            continue
        if "train_loss" in h:
            (handles[setting],) = loss_ax.plot(h[x], h["train_loss"], **style)
        if metric in h:  # epochs without an evaluation (eval_interval > 1) have no value: skipped
            m = h.dropna(subset=[metric])
            (handles[setting],) = metric_ax.plot(m[x], m[metric], **style)
    loss_ax.set_xlabel(x)
    loss_ax.set_ylabel("Training loss")
    metric_ax.set_xlabel(x)
    metric_ax.set_ylabel(label(metric))
    for a in (loss_ax, metric_ax):
        a.grid(alpha=0.3)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    shown = [s for s in settings if s in handles]
    fig.legend([handles[s] for s in shown], shown, loc="outside lower center", ncol=2, fontsize=6)
    fig.suptitle("Training curves", fontsize=9)
    return fig


def save(fig: Figure, out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` (atomically; the PDF without a creation date, so the same
    figure gives the same bytes); returns both paths."""
    paths = []
    for fmt in ("png", "pdf"):
        path = Path(out_dir) / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, metadata={"CreationDate": None} if fmt == "pdf" else None)
        paths.append(path)
    return paths
