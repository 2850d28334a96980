"""Provenance of the runs behind an ablation table: a row's columns (seeds, git sha, threads, host, CPU
instruction set, start dates), the table's one-line summary, and the refusal of runs of uncommitted code
(``-dirty``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from ablations.table_format import natural_key
from bench.errors import ConfigError


def row_provenance(group: pd.DataFrame) -> dict:
    """Provenance columns of a row: its seeds, git shas, threads, hosts, CPU instruction sets and start
    dates."""

    def joined(col: str) -> str:
        if col not in group.columns:
            return ""
        return " ".join(sorted({str(v) for v in group[col].dropna()}))

    threads = "threads" if "threads" in group.columns else "env.threads"
    return dict(
        seeds=" ".join(str(s) for s in sorted(group["seed"].dropna().astype(int)))
        if "seed" in group.columns
        else "",
        git_sha=joined("env.git_sha"),
        threads=joined(threads),
        host=joined("env.host"),
        cpu_capability=joined("env.cpu_capability"),
        started_utc=joined("env.started_utc"),
    )


def provenance(table: pd.DataFrame) -> str:
    """One line: code revision, threads, hosts, CPU instruction sets, run dates, seeds and n of the runs
    behind the table."""

    def union(col: str) -> str:
        vals = sorted({v for cell in table[col] for v in str(cell).split() if v}, key=natural_key)
        return ", ".join(vals) if vals else "unknown"

    dates = sorted({v for cell in table["started_utc"] for v in str(cell).split() if v})
    span = f"{dates[0]} … {dates[-1]}" if dates else "unknown"
    n = sorted({int(v) for v in table["n"]})
    made = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"Provenance: git {union('git_sha')}; threads {union('threads')}; host {union('host')}; "
        f"cpu {union('cpu_capability')}; runs {span}; seeds {union('seeds')}; "
        f"n = {'–'.join(map(str, sorted({n[0], n[-1]})))} per row; table made {made}."
    )


def check_clean(table: pd.DataFrame) -> None:
    """One-line ConfigError when a run of the table ran on code with uncommitted changes (``-dirty``)."""
    dirty = sorted({v for cell in table["git_sha"] for v in str(cell).split() if v.endswith("-dirty")})
    if dirty:
        raise ConfigError(
            f"table: runs of git {', '.join(dirty)} (uncommitted changes: the sha does not name the code); "
            "allowed: rerun the sweep from a clean commit, or pass --allow-dirty to write the table anyway"
        )
