"""How an ablation table's numbers are shown: column labels, significant digits (a column's decimals follow
its smallest spread), ``mean ± std`` cells, Δ with its significance mark and the flag of runs that did not
learn."""

from __future__ import annotations

import math
import re

import pandas as pd

LABELS = {
    "top1": "Top-1 (%)",
    "top5": "Top-5 (%)",
    "best_top1": "Best top-1 (%)",
    "energy_mJ": "Energy (mJ)",
    "energy_hw_mJ": "Energy hw (mJ)",
    "size_MB": "Size (MB)",
    "size_MB_paper": "Size (paper MB)",
    "params_M": "Params (M)",
    "SOPs_G": "SOPs (G)",
    "MACs_G": "MACs (G)",
    "fr_mean": "Firing rate",
    "latency_ms": "Latency (ms)",
    "img_per_s": "Images/s",
    "bbox_mAP": "box mAP",
    "bbox_mAP_50": "box mAP50",
    "aAcc": "aAcc (%)",
    "mAcc": "mAcc (%)",
    "segm_mAP": "mask mAP",
    "mIoU": "mIoU (%)",
}
MARK_SIG, MARK_FLAG = "*", "†"
# A spread below this fraction of the mean is float rounding (summation order), not a difference between
# runs: shown as exact (± 0) and tested as exact, e.g. 0.3604 ± 6.8e-17 for a size that every seed shares.
FLOAT_NOISE = 1e-9


SPREAD_DIGITS = 2  # significant digits of the spread; the mean is rounded to the same decimal
EXACT_DIGITS = 4  # significant digits of a value without spread (n = 1, or exact)


def spread(mean: float, std: float) -> float:
    """``std``, or 0 when it is below float noise relative to ``mean`` (NaN stays NaN: no spread known)."""
    if pd.isna(std):
        return math.nan
    return 0.0 if std <= FLOAT_NOISE * max(abs(mean), 1e-300) else float(std)


def column_decimals(means: pd.Series, stds: pd.Series) -> int | None:
    """Decimals of a column: ``SPREAD_DIGITS`` significant digits of its smallest non-zero spread (so no
    row's spread is rounded away); None when no row has a spread (every value exact or n = 1)."""
    spreads = [spread(m, s) for m, s in zip(means, stds, strict=True)]
    nonzero = [s for s in spreads if not pd.isna(s) and s > 0]
    if not nonzero:
        return None
    return max(0, SPREAD_DIGITS - 1 - math.floor(math.log10(min(nonzero))))


def _fmt(v: object, decimals: int | None = None, delta: bool = False) -> str:
    """A number at ``decimals`` decimals, or ``EXACT_DIGITS`` significant digits when None."""
    if v is None or pd.isna(v):
        return "—"
    sign = "+" if delta else ""
    if decimals is not None:
        return f"{round(v, decimals) + 0.0:{sign}.{decimals}f}"  # + 0.0: no "-0.00"
    if abs(v) >= 10**EXACT_DIGITS:
        return f"{v:{sign}.0f}"
    return f"{v:{sign}.{EXACT_DIGITS}g}"


def cell(mean: float, std: float, n: int, decimals: int | None) -> str:
    """``mean ± std`` at the column's decimals; ``mean ± 0`` for an exact value; the mean alone for n < 2."""
    if n < 2 or pd.isna(std):
        return _fmt(mean, decimals)
    s = spread(mean, std)
    if s == 0:
        return f"{_fmt(mean, decimals)} ± 0"
    return f"{_fmt(mean, decimals)} ± {_fmt(s, decimals)}"


def _label(col: str) -> str:
    return f"Δ {LABELS.get(col[2:], col[2:])}" if col.startswith("Δ ") else LABELS.get(col, col)


def display_cells(table: pd.DataFrame, best: dict) -> tuple[pd.DataFrame, dict[str, list[bool]]]:
    """Display strings (mean ± std, Δ with the significance mark, n, flag) and which cells are best."""
    metrics = table.attrs.get("metrics") or [c for c in table.columns if f"{c} std" in table.columns]
    shown = pd.DataFrame(index=table.index)
    bold: dict[str, list[bool]] = {}
    for m in metrics:
        dec = column_decimals(table[m], table[f"{m} std"])
        rows = zip(table[m], table[f"{m} std"], table["n"], strict=True)
        shown[_label(m)] = [cell(mean, std, n, dec) for mean, std, n in rows]
        bold[_label(m)] = [best.get(m) is not None and i == best[m] for i in table.index]
        if f"Δ {m}" in table.columns:
            shown[_label(f"Δ {m}")] = [
                _fmt(d, dec, delta=True) + (MARK_SIG if sig else "")
                for d, sig in zip(table[f"Δ {m}"], table[f"Δ {m} sig"], strict=True)
            ]
    shown["n"] = [str(int(n)) for n in table["n"]]
    shown["Flag"] = [f"{MARK_FLAG} {f}" if f else "" for f in table["flag"]]
    return shown, bold


def natural_key(text: str) -> tuple:
    """Sort key that reads the numbers in ``text`` as numbers: ``bits=2`` < ``bits=8`` < ``bits=32``,
    seed 2 < seed 10."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(text))
    return tuple((1, float(p), "") if i % 2 else (0, 0.0, p) for i, p in enumerate(parts))
