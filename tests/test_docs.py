"""Every ``spikebench …`` command quoted in README.md and docs/*.md matches the current command line, so the
docs cannot drift from the CLI unnoticed: a command in a code block parses whole; a command named inline in
prose (``spikebench eval classification --out DIR``) names subcommands and options that exist."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from bench.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# a code-block line that runs the command (optionally after env assignments or a venv path)
RUN = re.compile(r"^(?:[A-Z_]+=\S+\s+)*(?:\S*/)?spikebench\s+([^#|&;]*)")
INLINE = re.compile(r"`(?:\S*/)?spikebench ([^`]+)`")
ELIDED = ("…", "...", "<", "[", "|")


def _code_lines(text: str) -> list[str]:
    """Lines of fenced code blocks, continuation lines joined."""
    lines, inside, joined = [], False, ""
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside:
            joined += line.rstrip("\\").strip() + " "
            if not line.rstrip().endswith("\\"):
                lines.append(joined.strip())
                joined = ""
    return lines


def _commands() -> list[tuple[str, str, str]]:
    """(page, kind, args) for each quoted command; kind is ``run`` (code block) or ``named`` (inline)."""
    found = []
    for page in PAGES:
        text = page.read_text()
        runs = [m.group(1) for line in _code_lines(text) if (m := RUN.match(line))]
        for kind, quoted in (("run", runs), ("named", INLINE.findall(text))):
            for args in quoted:
                args = args.split("  ")[0].strip()  # a comment after two spaces
                if args and not any(mark in args for mark in ELIDED):
                    found.append((page.name, kind, args))
    return found


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def _check_named(parser: argparse.ArgumentParser, args: str) -> str | None:
    """Why a command named in prose does not match the CLI (None when its subcommands and options exist)."""
    words = shlex.split(args)
    while words and words[0] in _subparsers(parser):
        parser = _subparsers(parser)[words.pop(0)]
    positional = [a for a in parser._actions if not a.option_strings and a.choices]
    if words and not words[0].startswith("-") and positional and words[0] not in positional[0].choices:
        return f"no subcommand {words[0]!r} (choose from {', '.join(positional[0].choices)})"
    options = {s for a in parser._actions for s in a.option_strings}
    unknown = [w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in options]
    return f"unknown options {unknown}" if unknown else None


COMMANDS = _commands()


def test_the_docs_quote_commands():
    assert sum(kind == "run" for _, kind, _ in COMMANDS) >= 15, COMMANDS


@pytest.mark.parametrize("page,kind,args", COMMANDS, ids=[f"{p}: {k}: {a[:40]}" for p, k, a in COMMANDS])
def test_quoted_command_parses(page, kind, args):
    parser = build_parser()
    if kind == "named":
        why = _check_named(parser, args)
        assert why is None, f"{page}: `spikebench {args}`: {why}"
        return
    try:
        parser.parse_args(shlex.split(args))
    except SystemExit as err:
        pytest.fail(f"{page}: `spikebench {args}` does not parse (exit {err.code})")


def test_a_wrong_option_or_subcommand_is_caught():
    parser = build_parser()
    assert _check_named(parser, "eval classification --out DIR") is None
    assert "--outdir" in _check_named(parser, "eval classification --outdir DIR")
    assert "no subcommand" in _check_named(parser, "sweep frobnicate")
