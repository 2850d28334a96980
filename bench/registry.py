"""Model registry: ``register_model`` on a factory, ``create_model(name, **overrides)``, ``list_models()``."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from bench.errors import ConfigError


@dataclass
class ModelEntry:
    """A registered factory with its family and defaults."""

    name: str
    fn: Callable[..., nn.Module]
    family: str
    tiny: bool = False
    paper: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(family: str, tiny: bool = False, paper: dict | None = None) -> Callable:
    """Decorator: register a factory under its function name.

    ``paper`` holds published facts used for checks and reference columns (e.g. ``params_m``).
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _REGISTRY[fn.__name__] = ModelEntry(fn.__name__, fn, family, tiny, dict(paper or {}))
        return fn

    return wrap


def register_variant(
    name: str,
    family: str,
    build: Callable[..., nn.Module],
    defaults: dict,
    doc: str,
    paper: dict | None = None,
) -> Callable[..., nn.Module]:
    """Register ``name`` as ``build(**{**defaults, **overrides})``: a variant is a row of data, not code.
    Names ending in ``tiny`` are the CPU variants."""

    def factory(**overrides) -> nn.Module:
        return build(**{**defaults, **overrides})

    factory.__name__ = name
    factory.__doc__ = doc
    return register_model(family, tiny=name.endswith("tiny"), paper=paper)(factory)


def _load_all() -> None:
    import bench.models  # noqa: F401  (registers every family)


def list_models(pattern: str = "*", family: str | None = None, tiny: bool | None = None) -> list[str]:
    """Registered model names matching a glob pattern, optionally one family or only tiny variants."""
    _load_all()
    return sorted(
        n
        for n, e in _REGISTRY.items()
        if fnmatch.fnmatch(n, pattern)
        and (family is None or e.family == family)
        and (tiny is None or e.tiny == tiny)
    )


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises ConfigError listing the closest names."""
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.4)
        hint = f"closest registered names: {', '.join(close)}" if close else "see `spikebench models`"
        raise ConfigError(f"unknown model {name!r}; {hint}")
    return _REGISTRY[name]


def create_model(
    name: str, checkpoint: str | None = None, grad_checkpointing: bool = False, **overrides
) -> nn.Module:
    """Build a registered model; keyword overrides replace its defaults (bits, T, attention, ...).

    ``grad_checkpointing``: recompute activations in backward (``model.set_grad_checkpointing``, as timm):
    less training memory, the same numbers.

    ``checkpoint``: a spikebench or official checkpoint file loaded through an explicit key map
    (``bench.checkpoints``); what was loaded and dropped is in ``model.checkpoint_report``. Without a
    ``num_classes`` override the classifier gets the checkpoint's number of classes (a run trained on its
    own data); with one, a checkpoint of another class count is a one-line error.
    """
    entry = model_entry(name)
    read = prepared = None
    if checkpoint is not None:
        from bench.checkpoints import load_checkpoint, read_state_dict, stored_classes

        read = read_state_dict(checkpoint)
    if read is not None and "num_classes" not in overrides:
        build = lambda **kw: entry.fn(**overrides, **kw)  # noqa: E731
        classes, prepared = stored_classes(build, read[0], entry.family, f"checkpoint {checkpoint}")
        overrides = overrides if classes is None else dict(overrides, num_classes=classes)
    model = entry.fn(**overrides)
    if grad_checkpointing:
        if not hasattr(model, "set_grad_checkpointing"):
            raise ConfigError(
                f"grad_checkpointing=True is not supported by {name} ({entry.family}); allowed: false"
            )
        model.set_grad_checkpointing(True)
    if read is not None:
        report = load_checkpoint(model, checkpoint, entry.family, read, prepared)
        model.checkpoint_report = dict(report, model=name)
    return model
