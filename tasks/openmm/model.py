"""``SpikebenchModel``: a registered builder that builds an mmdet/mmseg model from its config and applies
the run's model options (spiking neck/heads), so the runner, checkpoints and tests all see one model type.

Config: ``model=dict(type='SpikebenchModel', model=<the detector/segmentor dict>, neck_head='spiking')``.
"""

from __future__ import annotations

from mmengine.registry import MODELS as ENGINE_MODELS
from torch import nn

from bench.errors import ConfigError, check_choice

NECK_HEADS = ("ann", "spiking")


def build_spikebench_model(
    model: dict, neck_head: str = "ann", registry: str = "mmseg", data_preprocessor: dict | None = None
) -> nn.Module:
    """Build ``model`` from the ``registry`` scope's MODELS; ``neck_head='spiking'`` makes neck and heads
    spiking as in the official SDT-V2/QSD dense code (``tasks.openmm.spiking.make_spiking_``).
    ``data_preprocessor`` (the runner passes the config's top-level one) is the model's unless it has one."""
    check_choice("neck_head", neck_head, NECK_HEADS)
    check_choice("registry", registry, ("mmseg", "mmdet"))
    if data_preprocessor is not None:
        model = dict(model)
        model.setdefault("data_preprocessor", data_preprocessor)
    if registry == "mmseg":
        from mmseg.registry import MODELS
    else:
        from mmdet.registry import MODELS
    built = MODELS.build(model)
    if neck_head == "spiking":
        built.spiking_neck_head = make_neck_head_spiking_(built)
    return built


def make_neck_head_spiking_(model: nn.Module) -> dict:
    """Neuron before every conv of neck and heads (``tasks.openmm.spiking.make_spiking_``): LIF, with the
    backbone's T (1 for ANN backbones): the neck and the main head are one region (T-mean
    at the head's output, as the official FPN_SNN -> FPNHead_SNN); an auxiliary head is a region of its own.
    Returns what was done (recorded in the run record)."""
    from tasks.openmm.spiking import make_spiking_

    inner = getattr(model.backbone, "model", model.backbone)
    neuron, levels = "lif", 4  # binary LIF as the official SDT-V2 dense necks/heads (SOPs countable)
    T = getattr(inner, "T", 1)
    heads = [getattr(model, a) for a in ("decode_head", "bbox_head") if getattr(model, a, None) is not None]
    if len(heads) != 1:
        raise ConfigError(
            f"neck_head='spiking' is not allowed for {type(model).__name__}; allowed: one decode/bbox head"
        )
    neck = getattr(model, "neck", None)
    region = [neck, heads[0]] if neck is not None else heads[0]
    layers = make_spiking_(region, T=T, neuron=neuron, levels=levels)
    aux = getattr(model, "auxiliary_head", None)
    if isinstance(aux, nn.Module):
        layers += [f"auxiliary_head.{n}" for n in make_spiking_(aux, T=T, neuron=neuron, levels=levels)]
    return dict(T=T, neuron=neuron, levels=levels, spike_fed_layers=len(layers))


def _register() -> None:
    from mmdet.registry import MODELS as DET_MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    for reg in (ENGINE_MODELS, DET_MODELS, SEG_MODELS):
        reg.register_module(name="SpikebenchModel", module=build_spikebench_model, force=True)


_register()
