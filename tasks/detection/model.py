"""``SpikebenchDetector``: an mmdet detector with a spiking and/or quantized neck and heads.

A registered builder, not a wrapper: it builds ``detector_type`` from the remaining keys and changes that
detector in place, so checkpoints keep mmdet's own parameter names and load into the plain detector.
- ``neck_head='spiking'``: the official SDT-V2/QSD detection code's spiking neck and heads (a neuron before
  every conv, T-mean of the outputs), through ``tasks.openmm.spiking.make_spiking_``.
- ``neck_head_bits < 32``: QFD's RetinaNet protocol, every conv of neck and heads LSQ-quantized except the
  heads' output convs (``skip``); the backbone is quantized through its own ``bits`` option.
"""

from __future__ import annotations

from mmdet.registry import MODELS
from torch import nn

from tasks.openmm.quantize import HEAD_OUTPUTS, quantize_


def build_spikebench_detector(
    detector_type: str,
    neck_head: str = "ann",
    neck_head_bits: int = 32,
    skip: tuple[str, ...] = HEAD_OUTPUTS,
    **detector: object,
) -> nn.Module:
    """Build ``detector_type(**detector)`` and make its neck and heads spiking / quantized."""
    model = MODELS.build(dict(type=detector_type, **detector))
    heads = [getattr(model, a) for a in ("bbox_head", "rpn_head") if getattr(model, a, None) is not None]
    roi = getattr(model, "roi_head", None)
    if roi is not None:
        heads += [getattr(roi, a) for a in ("bbox_head", "mask_head") if getattr(roi, a, None) is not None]
    if neck_head_bits < 32:
        for part in [model.neck, *heads]:
            quantize_(part, neck_head_bits, skip=skip)
    if neck_head == "spiking":
        from tasks.openmm.spiking import make_spiking_

        inner = getattr(model.backbone, "model", model.backbone)
        opts = getattr(inner, "opts", None)  # the backbone's neuron (LIF for ANN backbones), levels and T
        kw = dict(
            T=getattr(inner, "T", 1),
            neuron=opts.neuron if opts is not None and opts.neuron in ("lif", "ie-lif") else "lif",
            levels=opts.levels if opts is not None else 4,
        )
        if len(heads) == 1:  # one-stage: neck and head form one region, T-mean at the head's output
            layers = make_spiking_([model.neck, heads[0]], **kw)
        else:  # two-stage heads are called piecewise: one region each (T-mean between, official at T = 1)
            layers = [n for part in [model.neck, *heads] for n in make_spiking_(part, **kw)]
        model.spiking_neck_head = dict(kw, spike_fed_layers=len(layers))
    model.neck_head = neck_head
    return model


MODELS.register_module(name="SpikebenchDetector", module=build_spikebench_detector, force=True)
