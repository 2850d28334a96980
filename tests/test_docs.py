"""Every ``spikebench …`` command quoted in README.md and docs/*.md parses with the current command line
(its subcommands and options exist), so the docs cannot drift from the CLI unnoticed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a command inside a code block, or a whole backticked inline command (not a `train|test` overview)
COMMAND = re.compile(r"(?:\.venv/bin/)?spikebench\s+([^`#|&;]*)")


def _blocks(text: str) -> list[str]:
    """Lines of fenced code blocks (continuation lines joined) and inline backticked commands."""
    lines, inside, joined = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside:
            joined += line.rstrip("\\").strip() + " "
            if not line.rstrip().endswith("\\"):
                lines.append(joined)
                joined = ""
    lines += re.findall(r"`((?:\.venv/bin/)?spikebench [^`]+)`", text)
    return lines


def _commands() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for line in _blocks(page.read_text()):
            for m in COMMAND.finditer(line):
                args = m.group(1).split("  ")[0].strip()  # a comment after two spaces
                if not args or any(mark in args for mark in ("…", "...", "<", "[")):
                    continue  # an elided or placeholder command: nothing definite to parse
                found.append((page.name, args))
    return found


COMMANDS = _commands()


def test_the_docs_quote_commands():
    assert len(COMMANDS) >= 15, COMMANDS


@pytest.mark.parametrize("page,args", COMMANDS, ids=[f"{p}: {a[:40]}" for p, a in COMMANDS])
def test_quoted_command_parses(page, args):
    parser = build_parser()
    try:
        parser.parse_args(shlex.split(args))
    except SystemExit as err:
        pytest.fail(f"{page}: `spikebench {args}` does not parse (exit {err.code})")
