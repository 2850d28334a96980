"""The YAML side of sweep specs: a loader that remembers the line of every key and refuses duplicate keys, so
that an error names its place (``file:line: field=value is not allowed; allowed values: …``)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bench.errors import ConfigError


class SpecError(ConfigError):
    """A bad sweep spec (one line, with file and line)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps line numbers and refuses duplicate keys."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise SpecError(
                f"{loader.name}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                f"(first at line {seen[key]}); every key, axes included, may appear once"
            )
        seen[key] = key_node.start_mark.line + 1
        loader.lines[key] = loader.lines.get(key, key_node.start_mark.line + 1)
        loader.lines.setdefault(f"*{key}", []).append(key_node.start_mark.line + 1)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# YAML 1.1 reads `1e-3` (no dot) as a string; a spec means a number (YAML 1.2 reads it so too)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_spec_yaml(path: Path) -> tuple[object, dict]:
    """The data of the spec file ``path`` and its key lines: ``lines[key]`` is the first line of ``key``
    anywhere in the file, ``lines["*" + key]`` every line of it. SpecError (one line) when the file is
    missing, not YAML or repeats a key within a mapping."""
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    loader = _Loader(path.read_text())
    loader.name = str(path)
    loader.lines = {}
    try:
        raw = loader.get_single_data()
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    finally:
        loader.dispose()
    return raw, loader.lines


def where(spec_path: Path, lines: dict, key: str, under: str | None = None) -> str:
    """``file:line`` of ``key`` (its first occurrence after the key ``under``, when given)."""
    if under is not None and under in lines:
        after = [n for n in lines.get(f"*{key}", []) if n >= lines[under]]
        if after:
            return f"{spec_path}:{after[0]}"
    return f"{spec_path}:{lines[key]}" if key in lines else str(spec_path)
