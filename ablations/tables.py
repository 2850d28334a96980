"""Paper-ready ablation tables: rows = settings, columns = metrics over seeds, Δ to the baseline, best marked.

How to read them (also written under every table):
- a cell is the mean ± the sample standard deviation (ddof = 1) over the row's ``n`` runs (one per seed);
- ``Δ`` is the difference of means against the baseline row; ``*`` marks a Δ that a two-sided t-test over
  the seeds finds significant at ``ALPHA`` = 0.05 — paired by seed where both rows ran the same seeds,
  Welch's unequal-variance test otherwise; with zero variance on both sides a non-zero Δ is exact (a
  deterministic difference, e.g. model size) and counts as significant; with n < 2 no test, no marker;
- **bold**: the best value of a metric, given only when the same test separates it from the runner-up and
  neither is flagged;
- ``†``: a row with runs that did not learn (``tasks.health``: top-1 at chance, or a silent spiking
  layer): shown for completeness, never a result, never best.

Outputs CSV (numbers: mean, std, Δ, p-value, significance, n, flag and per-row provenance), Markdown and
LaTeX (booktabs rules, with the notes and the provenance: git sha, threads, host, dates, seeds, n). How the
numbers are shown (labels, significant digits, cells) is ``table_format``, the runs' provenance
``table_provenance``; this module re-exports their names.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ablations.table_format import (
    EXACT_DIGITS,
    FLOAT_NOISE,
    LABELS,
    MARK_FLAG,
    MARK_SIG,
    SPREAD_DIGITS,
    cell,
    column_decimals,
    display_cells,
    spread,
)
from ablations.table_provenance import check_clean, provenance, row_provenance
from bench.errors import ConfigError
from bench.io import write_text_atomic

ALPHA = 0.05
HIGHER_IS_BETTER = {
    "top1",
    "top5",
    "best_top1",
    "img_per_s",
    "bbox_mAP",
    "bbox_mAP_50",
    "bbox_mAP_75",
    "segm_mAP",
    "mIoU",
    "mAcc",
    "aAcc",
}

__all__ = [  # the names other modules import from here (some defined in table_format, table_provenance)
    "ALPHA",
    "EXACT_DIGITS",
    "FLOAT_NOISE",
    "HIGHER_IS_BETTER",
    "LABELS",
    "MARK_FLAG",
    "MARK_SIG",
    "SPREAD_DIGITS",
    "ablation_table",
    "cell",
    "check_clean",
    "column_decimals",
    "compare",
    "notes",
    "provenance",
    "setting",
    "spread",
    "to_csv",
    "to_latex",
    "to_markdown",
    "write_table",
]


def setting(value: object) -> str:
    """An axis value as a row key: 0, 0.0 and "0" are one setting (a numeric column holds 0 as 0.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(group: pd.DataFrame, metric: str) -> pd.Series:
    """A metric's values in a group, indexed by seed when the runs have distinct seeds."""
    vals = pd.to_numeric(group[metric], errors="coerce")
    if "seed" in group.columns and group["seed"].notna().all() and group["seed"].is_unique:
        vals.index = group["seed"].astype(int)
    else:
        vals = vals.reset_index(drop=True)
        vals.index = [f"run{i}" for i in range(len(vals))]
    return vals.dropna()


def compare(a: pd.Series, b: pd.Series) -> tuple[float, str]:
    """Two-sided p-value that the means of ``a`` and ``b`` differ, and the test's name: ``paired-t`` when
    both are indexed by the same seeds, ``welch-t`` otherwise; ``exact`` when both sides have zero variance
    (up to ``FLOAT_NOISE``; p = 0 if the means differ, 1 if not); ``none`` (p = NaN) when a side has fewer
    than 2 values."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return math.nan, "none"
    scale = max(float(a.abs().max()), float(b.abs().max()))

    def flat(x: pd.Series) -> bool:  # no spread beyond float rounding (FLOAT_NOISE)
        return x.std(ddof=1) <= FLOAT_NOISE * scale

    paired = set(a.index) == set(b.index)
    if paired:
        d = a - b.reindex(a.index)
        if flat(d):
            return (0.0 if abs(d.mean()) > FLOAT_NOISE * scale else 1.0), "exact"
        return float(stats.ttest_rel(a, b.reindex(a.index)).pvalue), "paired-t"
    if flat(a) and flat(b):
        return (0.0 if abs(a.mean() - b.mean()) > FLOAT_NOISE * scale else 1.0), "exact"
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue), "welch-t"


def _flag_summary(group: pd.DataFrame) -> str:
    if "flag" not in group.columns:
        return ""
    flags = group["flag"].fillna("").astype(str)
    bad = flags[flags != ""]
    if bad.empty:
        return ""
    kinds = sorted({f.split(":")[0] for line in bad for f in line.split("; ")})
    return f"{'+'.join(kinds)} {len(bad)}/{len(group)}"


def ablation_table(
    df: pd.DataFrame,
    axes: list[str],
    metrics: list[str],
    baseline: dict | None = None,
    order: dict[str, list] | None = None,
) -> tuple[pd.DataFrame, dict[str, object]]:
    """One row per setting (ok runs only): for every metric its mean, ``<m> std``; with a baseline
    ``Δ <m>``, ``Δ <m> p`` (test p-value), ``Δ <m> test`` and ``Δ <m> sig``; then ``n``, ``flag`` and
    the provenance columns. Returns the table and, per metric, the best setting (None when it is not
    distinguishable from the runner-up). ``order`` (axis -> values, as in the spec) orders the rows."""
    missing = [c for c in axes + metrics if c not in df.columns]
    if missing:
        raise ConfigError(
            f"table: no column {missing[0]!r} in the results; available: {', '.join(map(str, df.columns))}"
        )
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    if ok.empty:
        raise ConfigError("table: no finished (ok) run in the results")
    keyed = ok.assign(**{a: ok[a].map(setting) for a in axes})
    groups = dict(list(keyed.groupby(axes if len(axes) > 1 else axes[0], sort=False)))
    keys = list(groups)
    if order:
        rank = {a: {setting(v): i for i, v in enumerate(order.get(a, []))} for a in axes}
        tup = {k: (k if isinstance(k, tuple) else (k,)) for k in keys}
        keys.sort(key=lambda k: [rank[a].get(v, len(rank[a])) for a, v in zip(axes, tup[k], strict=True)])
    values = {k: {m: _values(groups[k], m) for m in metrics} for k in keys}
    rows = {}
    for k in keys:
        row: dict = {}
        for m in metrics:
            v = values[k][m]
            row[m] = v.mean() if len(v) else math.nan
            row[f"{m} std"] = v.std(ddof=1) if len(v) > 1 else math.nan
        row["n"] = len(groups[k])
        row["flag"] = _flag_summary(groups[k])
        rows[k] = row
    base_key = None
    if baseline:
        base_key = tuple(setting(baseline[a]) for a in axes) if len(axes) > 1 else setting(baseline[axes[0]])
        if base_key not in rows:
            raise ConfigError(f"table: baseline {baseline} is not among the finished settings")
        for k in keys:
            for m in metrics:
                p, test = compare(values[k][m], values[base_key][m]) if k != base_key else (math.nan, "base")
                rows[k][f"Δ {m}"] = rows[k][m] - rows[base_key][m]
                rows[k][f"Δ {m} p"] = p
                rows[k][f"Δ {m} test"] = test
                trusted = not rows[k]["flag"] and not rows[base_key]["flag"]
                rows[k][f"Δ {m} sig"] = bool(trusted and not math.isnan(p) and p < ALPHA)
    for k in keys:
        rows[k].update(row_provenance(groups[k]))
    table = pd.DataFrame.from_dict(rows, orient="index")
    if len(axes) > 1:
        table.index = pd.MultiIndex.from_tuples(table.index, names=axes)
    else:
        table.index.name = axes[0]
    best = {m: _best(table, values, m) for m in metrics}
    lead = [c for m in metrics for c in (m, f"{m} std") + ((f"Δ {m}",) if baseline else ())]
    table = table[lead + [c for c in table.columns if c not in lead]]
    table.attrs.update(metrics=list(metrics), baseline=baseline or {}, axes=list(axes))
    return table, best


def _best(table: pd.DataFrame, values: dict, metric: str) -> object:
    """The best unflagged setting of ``metric`` if the test separates it from the runner-up, else None."""
    cand = table[(table["flag"] == "") & table[metric].notna()]
    if len(cand) < 2:
        return None
    ranked = cand[metric].sort_values(ascending=metric not in HIGHER_IS_BETTER)
    first, second = ranked.index[0], ranked.index[1]
    if ranked.iloc[0] == ranked.iloc[1]:
        return None
    p, _ = compare(values[first][metric], values[second][metric])
    return first if not math.isnan(p) and p < ALPHA else None


def notes(table: pd.DataFrame) -> str:
    """The spec's note (``table.attrs["note"]``), then what ±, Δ, the marks and the bold mean."""
    base = table.attrs.get("baseline") or {}
    base_txt = ", ".join(f"{k}={v}" for k, v in base.items())
    note = table.attrs.get("note") or ""
    parts = [f"Note: {note}"] if note else []
    parts.append("Mean ± sample standard deviation (ddof = 1) over the n runs (seeds) of each row.")
    if base:
        parts.append(
            f"Δ: difference of means against the baseline ({base_txt}); {MARK_SIG}: significant at "
            f"α = {ALPHA} (two-sided t-test over seeds, paired by seed where both rows ran the same seeds, "
            "Welch otherwise; zero variance on both sides: exact); no test when n < 2."
        )
    parts.append(
        "Bold: best value, significantly better than the runner-up by the same test (none when n < 2)."
    )
    parts.append(
        f"{MARK_FLAG}: runs that did not learn (top-1 not above chance, one-sided binomial test at "
        "α = 0.01; mIoU not above the most frequent class predicted everywhere; box AP 0; or a spiking "
        "layer firing < 1e-4): not a result, never best."
    )
    return " ".join(parts)


def to_markdown(table: pd.DataFrame, best: dict) -> str:
    """Markdown: mean ± std cells, best in bold, Δ with its significance mark, n, flag; then the notes and
    the provenance."""
    shown, bold = display_cells(table, best)
    for col, mask in bold.items():
        shown[col] = [f"**{c}**" if b else c for c, b in zip(shown[col], mask, strict=True)]
    md = shown.reset_index().to_markdown(index=False, disable_numparse=True)
    return f"{md}\n\n{notes(table)}\n\n{provenance(table)}"


def _tex(text: str) -> str:
    return (
        str(text)
        .replace("\\", r"\textbackslash{}")
        .replace("%", r"\%")
        .replace("_", r"\_")
        .replace("&", r"\&")
        .replace("#", r"\#")
    )


def to_latex(table: pd.DataFrame, best: dict, caption: str | None = None) -> str:
    """A booktabs LaTeX table (``\\toprule``/``\\midrule``/``\\bottomrule``), best values in bold, the notes
    in the caption and the provenance as a comment line."""
    shown, bold = display_cells(table, best)
    shown = shown.map(_tex)
    styler = shown.rename(columns=_tex).style
    for col, mask in bold.items():
        styler = styler.apply(
            lambda s, m=mask: ["font-weight: bold" if b else "" for b in m], subset=[_tex(col)]
        )
    styler = styler.format_index(_tex, axis=0)
    full_caption = f"{caption + '. ' if caption else ''}{notes(table)}"
    latex = styler.to_latex(
        hrules=True,
        convert_css=True,
        caption=_tex(full_caption),
        position_float="centering",
        sparse_index=False,
    )
    latex = (
        latex.replace("±", r"$\pm$")
        .replace("Δ", r"$\Delta$")
        .replace(MARK_FLAG, r"\dag{}")
        .replace("α", r"$\alpha$")
        .replace("…", r"\dots{}")
    )
    return f"% {provenance(table)}\n{latex}"


def to_csv(table: pd.DataFrame, best: dict) -> str:
    """CSV of the numbers, with a ``best_<metric>`` flag column per metric."""
    csv = table.copy()
    for m in table.attrs.get("metrics", []):
        csv[f"best_{m}"] = [best.get(m) is not None and i == best[m] for i in table.index]
    return csv.reset_index().to_csv(index=False)


def write_table(
    table: pd.DataFrame,
    best: dict,
    out_dir: str | Path,
    stem: str = "ablation",
    caption: str | None = None,
    allow_dirty: bool = False,
) -> list[Path]:
    """``<stem>.csv`` (with ``best_<metric>`` flags), ``<stem>.md`` and ``<stem>.tex`` in ``out_dir``;
    refused (``check_clean``) for runs of a dirty tree unless ``allow_dirty``."""
    if not allow_dirty:
        check_clean(table)
    out_dir = Path(out_dir)
    return [
        write_text_atomic(out_dir / f"{stem}.csv", to_csv(table, best)),
        write_text_atomic(out_dir / f"{stem}.md", to_markdown(table, best) + "\n"),
        write_text_atomic(out_dir / f"{stem}.tex", to_latex(table, best, caption)),
    ]
