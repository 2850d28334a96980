"""Load spikebench and official checkpoints into registered models (``create_model(name, checkpoint=path)``).

A file is a state dict, or a dict holding one under ``model``, ``state_dict`` or ``model_ema`` (DDP's
``module.`` prefix is stripped). Its layout is detected from its names: ``spikebench`` (our own names,
e.g. a run's ``checkpoints/last.pt``) or one official layout per module of this package (``sdt_v1``,
``sdt_v2``, ``qsd``, ``timm``, ``snap_efficientformer``, ``cvnets_mobilevit``). Every tensor must be used:
a missing, unexpected or mis-shaped key is a one-line ``ConfigError``; tensors the official forward never
reads are dropped by name and listed in the returned report.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.checkpoints import cvnets, qsd, sdt_v1, sdt_v2, snap, timm_files
from bench.checkpoints.keymap import KeyMap, to_official, to_ours
from bench.errors import ConfigError

LAYOUTS = {m.LAYOUT: m for m in (sdt_v1, sdt_v2, qsd, timm_files, snap, cvnets)}
WRAPPERS = ("model", "state_dict", "model_ema", "state_dict_ema")

__all__ = [
    "LAYOUTS",
    "keymap_for",
    "load_checkpoint",
    "prepare_state",
    "read_state_dict",
    "stored_classes",
    "to_official",
]


def read_state_dict(path: str | Path) -> tuple[dict[str, Tensor], str]:
    """The tensors of a checkpoint file and how it was read (``weights_only`` or ``full pickle``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path)), "safetensors"
    try:
        obj, how = torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError:
        # training checkpoints also pickle their arguments and RNG states: load only files you trust
        obj, how = torch.load(path, map_location="cpu", weights_only=False), "full pickle"
    except Exception as e:  # noqa: BLE001  (a corrupt or foreign file)
        raise ConfigError(f"checkpoint {path}: cannot be read ({type(e).__name__}: {e})") from None
    if isinstance(obj, dict):
        for key in WRAPPERS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ConfigError(
            f"checkpoint {path}: no state dict found; allowed: a dict of tensors, or one under "
            f"{', '.join(WRAPPERS)}"
        )
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj, how


def _spikebench_keymap(model: nn.Module, state: dict[str, Tensor] | None = None) -> KeyMap:
    """Every key of ``model`` to itself, less the LSQ quantizer keys ``state`` lacks (a full-precision
    spikebench checkpoint loaded into a quantized model: those steps initialise on the first forward)."""
    km = KeyMap("spikebench")
    for k in model.state_dict():
        if state is not None and ".quantizer." in k and k not in state:
            continue
        km.add(k, k)
    return km


def keymap_for(layout: str, model: nn.Module, state: dict[str, Tensor] | None = None) -> KeyMap:
    """The key map of ``layout`` for ``model`` (``state``: the checkpoint, for the spikebench layout)."""
    if layout == "spikebench":
        return _spikebench_keymap(model, state)
    return LAYOUTS[layout].keymap(model)


def detect_layout(state: dict[str, Tensor], model: nn.Module, family: str, source: str) -> str:
    """The layout of ``state`` among those that apply to ``family``; a one-line error if none does."""
    ours = set(model.state_dict())
    if ours and len(ours & set(state)) >= 0.5 * len(ours):
        return "spikebench"
    for name, mod in LAYOUTS.items():
        if family not in mod.FAMILIES:
            continue
        if mod.matches_model(state, model) if hasattr(mod, "matches_model") else mod.matches(state):
            return name
    allowed = ["spikebench"] + [n for n, m in LAYOUTS.items() if family in m.FAMILIES]
    raise ConfigError(
        f"{source}: not a checkpoint layout known for family {family!r} (first keys: "
        f"{', '.join(list(state)[:3])}); allowed layouts: {', '.join(allowed)}"
    )


Prepared = tuple[str, dict[str, Tensor], list[str]]  # layout, state after its ``prepare``, notes


def prepare_state(state: dict[str, Tensor], model: nn.Module, family: str, source: str) -> Prepared:
    """The layout of ``state`` for ``model``, the state after that layout's ``prepare`` and its notes."""
    layout = detect_layout(state, model, family, source)
    prepare = getattr(LAYOUTS.get(layout), "prepare", None)
    state, notes = prepare(state) if prepare is not None else (state, [])
    return layout, state, notes


def stored_classes(
    build: Callable[..., nn.Module], state: dict[str, Tensor], family: str, source: str
) -> tuple[int | None, Prepared]:
    """The number of classes of the classifier stored in the checkpoint tensors ``state`` (any layout of
    ``family``) for the model ``build(**kw)`` makes (None when they hold no classifier of that model), and
    the prepared checkpoint (``prepare_state``) for ``load_checkpoint``."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        ref = build()
        more = build(num_classes=ref.num_classes + 1) if getattr(ref, "num_classes", 0) else None
    prepared = prepare_state(state, ref, family, source)
    if more is None:
        return None, prepared
    other = {k: v.shape for k, v in more.state_dict().items()}
    sized = {  # our tensors that grow with the class count: their rank and the dimension that grows
        k: (len(v.shape), next(i for i, (a, b) in enumerate(zip(v.shape, other[k], strict=True)) if a != b))
        for k, v in ref.state_dict().items()
        if k in other and other[k] != v.shape and len(other[k]) == len(v.shape)
    }
    layout, state, _ = prepared
    for pair in keymap_for(layout, ref, state).pairs:
        if pair.ours in sized and pair.official in state:
            stored = pair.convert(state[pair.official]).shape
            rank, dim = sized[pair.ours]
            if len(stored) == rank:
                return int(stored[dim]), prepared
    return None, prepared


def _quantizer_fill(km: KeyMap, model: nn.Module) -> list[str]:
    """Our LSQ steps with no counterpart in a full-precision checkpoint (initialised on first forward)."""
    mapped = {p.ours for p in km.pairs}
    return [k for k in model.state_dict() if ".quantizer." in k and k not in mapped]


def load_checkpoint(
    model: nn.Module,
    path: str | Path,
    family: str,
    read: tuple[dict[str, Tensor], str] | None = None,
    prepared: Prepared | None = None,
) -> dict:
    """Load ``path`` into ``model`` in place; return the checkpoint report (path, layout, counts, dropped).
    ``read``: what ``read_state_dict(path)`` returned, when the caller has read the file already;
    ``prepared``: what ``prepare_state`` (or ``stored_classes``) made of it, when the caller has that too."""
    source = f"checkpoint {path}"
    state, how = read if read is not None else read_state_dict(path)
    layout, state, notes = prepared if prepared is not None else prepare_state(state, model, family, source)
    km = keymap_for(layout, model, state)
    fill = _quantizer_fill(km, model)
    ours, report = to_ours(km, state, model, source)
    current = model.state_dict()
    ours.update({k: current[k] for k in fill})
    left = sorted(set(current) - set(ours))
    if left:
        raise ConfigError(
            f"{source}: the {layout} map leaves {len(left)} tensors of this model unset: {left[:6]}"
        )
    model.load_state_dict(ours, strict=True)
    init_steps = sorted({k.rsplit(".quantizer.", 1)[0] for k in fill})
    for name in init_steps:
        model.get_submodule(name).quantizer.initialized.fill_(False)
    report.update(path=str(path), read=how, notes=notes, steps_initialised_on_first_forward=init_steps)
    return report
