"""The version of each generated set (``generated:<name>``): raised whenever that set's generator writes other
images or labels. A version past 1 names the cache folder (``<name>-v<version>``), so an older copy is never
read, and enters the content hash of every run on the set, so a rerun never takes an earlier run on the older
set for its own; version 1 leaves both as they were before sets had versions."""

from __future__ import annotations

GENERATED_VERSIONS = {
    "imagenet-10": 1,
    "imagenet-10-64px": 1,
    "imagenet-10-eval500": 1,
    "imagenet-hue14": 1,
    "cifar10": 1,
    "cifar100": 1,
    "coco-tiny": 1,
    "ade20k-tiny": 1,
}


def generated_version(spec: str) -> int | None:
    """The version of ``generated:<name>``; None for a folder or a name that is not a generated set."""
    if not spec.startswith("generated:"):
        return None
    return GENERATED_VERSIONS.get(spec.split(":", 1)[1])


def cache_name(name: str) -> str:
    """The cache folder of generated set ``name`` at its version."""
    version = GENERATED_VERSIONS[name]
    return name if version == 1 else f"{name}-v{version}"


def versioned(fields: dict) -> dict:
    """A config's fields as hashed: with ``data_version`` when its generated set is past version 1."""
    version = generated_version(str(fields.get("data", "")))
    return fields if version is None or version == 1 else dict(fields, data_version=version)
