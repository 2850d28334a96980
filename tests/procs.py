"""Live processes of a session, or naming a path: what a killed sweep may leave behind (read from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _processes() -> list[tuple[int, int, str, str]]:
    """(pid, session id, state, command line) of every process."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out.append((int(d.name), int(fields[3]), fields[0], cmd))
    return out


def survivors(session: int, needle: str, timeout: float = 60.0) -> list[str]:
    """Processes (not zombies) of ``session`` or whose command line contains ``needle`` still alive after
    up to ``timeout`` seconds; an empty list as soon as there are none."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [
            f"{pid} {cmd}"
            for pid, sid, state, cmd in _processes()
            if pid != os.getpid() and state != "Z" and (sid == session or needle in cmd)
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)
