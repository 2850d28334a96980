"""Paper-ready ablation tables: rows = settings, columns = metrics, delta to the baseline, best marked.

Outputs CSV (numbers, with a ``best`` marker column per metric), Markdown (best in bold) and LaTeX
(booktabs rules, best in ``\\textbf``), built from one tidy DataFrame with pandas.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import ConfigError
from bench.io import write_text_atomic

HIGHER_IS_BETTER = {"top1", "top5", "best_top1", "img_per_s"}
LABELS = {
    "top1": "Top-1 (%)",
    "top5": "Top-5 (%)",
    "best_top1": "Best top-1 (%)",
    "energy_mJ": "Energy (mJ)",
    "size_MB": "Size (MB)",
    "size_MB_paper": "Size (paper MB)",
    "params_M": "Params (M)",
    "SOPs_G": "SOPs (G)",
    "MACs_G": "MACs (G)",
    "fr_mean": "Firing rate",
    "latency_ms": "Latency (ms)",
    "img_per_s": "Images/s",
}


def ablation_table(
    df: pd.DataFrame,
    axes: list[str],
    metrics: list[str],
    baseline: dict | None = None,
    order: dict[str, list] | None = None,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Mean of each metric per setting (ok runs only), a ``Δ metric`` column per metric when a baseline is
    given, and the best setting of each metric. ``order`` (axis -> values, as in the spec) orders the rows."""
    missing = [c for c in axes + metrics if c not in df.columns]
    if missing:
        raise ConfigError(
            f"table: no column {missing[0]!r} in the results; available: {', '.join(map(str, df.columns))}"
        )
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    if ok.empty:
        raise ConfigError("table: no finished (ok) run in the results")
    keyed = ok.assign(**{a: ok[a].astype(str) for a in axes})
    table = keyed.groupby(axes, sort=False)[metrics].mean()
    if order:
        rank = {a: {str(v): i for i, v in enumerate(order.get(a, []))} for a in axes}
        keys = [k if isinstance(k, tuple) else (k,) for k in table.index]
        pos = sorted(
            range(len(keys)),
            key=lambda i: [rank[a].get(v, len(rank[a])) for a, v in zip(axes, keys[i], strict=True)],
        )
        table = table.iloc[pos]
    best = {m: (table[m].idxmax() if m in HIGHER_IS_BETTER else table[m].idxmin()) for m in metrics}
    if baseline:
        key = tuple(str(baseline[a]) for a in axes) if len(axes) > 1 else str(baseline[axes[0]])
        if key not in table.index:
            raise ConfigError(f"table: baseline {baseline} is not among the finished settings")
        for m in metrics:
            table[f"Δ {m}"] = table[m] - table.loc[key, m]
        table = table[[c for m in metrics for c in (m, f"Δ {m}")]]
    return table, best


def _fmt(v: object, delta: bool = False) -> str:
    if pd.isna(v):
        return "—"
    if delta:
        return f"{v:+.3g}" if abs(v) < 100 else f"{v:+.1f}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:.0f}"


def to_markdown(table: pd.DataFrame, best: dict) -> str:
    """Markdown with the best value of each metric in bold."""
    shown = pd.DataFrame(index=table.index)
    for col in table.columns:
        delta = str(col).startswith("Δ ")
        cells = [_fmt(v, delta) for v in table[col]]
        if col in best:
            cells = [f"**{c}**" if idx == best[col] else c for c, idx in zip(cells, table.index, strict=True)]
        shown[LABELS.get(col, col) if not delta else f"Δ {LABELS.get(col[2:], col[2:])}"] = cells
    return shown.reset_index().to_markdown(index=False, disable_numparse=True)


def to_latex(table: pd.DataFrame, best: dict, caption: str | None = None) -> str:
    """A booktabs LaTeX table (``\\toprule``/``\\midrule``/``\\bottomrule``), best values in bold."""
    labels = {
        c: (LABELS.get(c, c) if not str(c).startswith("Δ ") else f"Δ {LABELS.get(c[2:], c[2:])}")
        for c in table.columns
    }
    styler = table.rename(columns=labels).style
    for col in table.columns:
        is_delta = str(col).startswith("Δ ")
        styler = styler.format(lambda v, d=is_delta: _fmt(v, d), subset=[labels[col]])
        if col in best:
            mask_col = labels[col]
            styler = styler.apply(
                lambda s, b=best[col]: ["font-weight: bold" if i == b else "" for i in s.index],
                subset=[mask_col],
            )
    styler = styler.format_index(lambda v: str(v).replace("_", r"\_"), axis=0)
    styler = styler.format_index(lambda v: str(v).replace("%", r"\%").replace("_", r"\_"), axis=1)
    latex = styler.to_latex(
        hrules=True, convert_css=True, caption=caption, position_float="centering", sparse_index=False
    )
    return latex.replace("Δ", r"$\Delta$")


def write_table(
    table: pd.DataFrame, best: dict, out_dir: str | Path, stem: str = "ablation", caption: str | None = None
) -> list[Path]:
    """``<stem>.csv`` (with ``best_<metric>`` flags), ``<stem>.md`` and ``<stem>.tex`` in ``out_dir``."""
    out_dir = Path(out_dir)
    csv = table.copy()
    for m, idx in best.items():
        csv[f"best_{m}"] = [i == idx for i in table.index]
    paths = [
        write_text_atomic(out_dir / f"{stem}.csv", csv.reset_index().to_csv(index=False)),
        write_text_atomic(out_dir / f"{stem}.md", to_markdown(table, best) + "\n"),
        write_text_atomic(out_dir / f"{stem}.tex", to_latex(table, best, caption)),
    ]
    return paths
