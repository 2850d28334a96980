"""ViTDet's simple pyramid, spiking necks/heads and quantized necks/heads on real mmdet/mmseg modules."""

import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmseg.registry import MODELS as SEG_MODELS
from torch import nn

import bench
from bench.errors import ConfigError
from bench.measure.ops import SynapticOps
from bench.nn.quant import QConv2d
from tasks.openmm.necks import LayerNorm2d
from tasks.openmm.quantize import quantize_
from tasks.openmm.spiking import make_spiking_

IN_CHANNELS = [8, 16, 32]


def _fpn():
    return DET_MODELS.build(
        dict(
            type="FPN",
            in_channels=IN_CHANNELS,
            out_channels=16,
            start_level=0,
            add_extra_convs="on_input",
            num_outs=5,
        )
    )


def _retina_head():
    return DET_MODELS.build(
        dict(type="RetinaHead", num_classes=3, in_channels=16, stacked_convs=2, feat_channels=16)
    )


def _seg_head():
    return SEG_MODELS.build(
        dict(
            type="FPNHead",
            in_channels=[16, 16, 16, 16],
            in_index=[0, 1, 2, 3],
            feature_strides=[4, 8, 16, 32],
            channels=16,
            num_classes=5,
            norm_cfg=dict(type="BN"),
        )
    )


def _maps(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, c, 32 >> i, 32 >> i, generator=g) for i, c in enumerate(IN_CHANNELS))


class Detector(nn.Module):
    """Neck then head, as mmdet's RetinaNet calls them."""

    def __init__(self, neck, head):
        super().__init__()
        self.neck, self.head = neck, head

    def forward(self, feats):
        return self.head(self.neck(feats))


def _conv_inputs(module, run):
    seen = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out, n=n: seen.setdefault(n, []).append(args[0].detach()))
        for n, m in module.named_modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            out = run()
    finally:
        for h in hooks:
            h.remove()
    return seen, out


def _flat(out):
    return torch.cat([t.flatten() for level in out for t in (level if isinstance(level, list) else [level])])


@pytest.mark.parametrize("registry", [DET_MODELS, SEG_MODELS])
def test_simple_fpn_builds_vitdet_pyramid_from_one_vit_map(registry):
    vit = bench.create_model("vit_tiny", num_classes=0).eval()
    neck = registry.build(dict(type="SimpleFPN", backbone_channel=64, out_channels=16, num_outs=5))
    x = torch.randn(2, 3, 128, 96)
    outs = neck(tuple(vit.forward_features(x)))
    assert [o.shape[-2:] for o in outs] == [(-(-128 // s), -(-96 // s)) for s in (4, 8, 16, 32, 64)]
    assert neck.strides == [4, 8, 16, 32, 64] and all(o.shape[:2] == (2, 16) for o in outs)
    # stride 4: two transposed convs 64->32->16 with LN2d+GELU between; stride 8: one 64->32; then per level
    # a 1x1 and a 3x3 conv without bias, each followed by LN2d
    deconvs = (64 * 32 * 4 + 32) + 2 * 32 + (32 * 16 * 4 + 16) + (64 * 32 * 4 + 32)
    convs = sum(c * 16 + 2 * 16 + 16 * 16 * 9 + 2 * 16 for c in (16, 32, 64, 64))
    assert sum(p.numel() for p in neck.parameters()) == deconvs + convs
    assert all(m.conv.bias is None and isinstance(m.norm, LayerNorm2d) for m in neck.lateral_convs)
    sum(o.mean() for o in outs).backward()
    assert vit.net.blocks[-1].mlp.fc2.weight.grad is not None


def test_simple_fpn_for_retinanet_and_layer_norm_and_errors():
    neck = DET_MODELS.build(dict(type="SimpleFPN", backbone_channel=32, out_channels=8, start_level=1))
    outs = neck(torch.randn(1, 32, 8, 8))
    assert neck.strides == [8, 16, 32, 64, 128] and [o.shape[-1] for o in outs] == [16, 8, 4, 2, 1]
    ln = LayerNorm2d(6)
    ln.weight.data.uniform_()
    x = torch.randn(2, 6, 3, 3)
    ref = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + 1e-6)
    assert torch.allclose(ln(x), ref * ln.weight.view(1, -1, 1, 1), atol=1e-5)
    with pytest.raises(ConfigError, match=r"in_channels=\[8, 16, 32, 32\] is not allowed.*allowed: \[16, 32"):
        DET_MODELS.build(dict(type="SimpleFPN", backbone_channel=64, in_channels=[8, 16, 32, 32]))
    with pytest.raises(ConfigError, match="SimpleFPN input has 48 channels; allowed: backbone_channel=32"):
        neck(torch.randn(1, 48, 8, 8))


def test_spiking_fpn_and_retina_head_feed_spikes_and_reset_state():
    torch.manual_seed(0)
    model = Detector(_fpn(), _retina_head()).eval()
    plain_convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        plain = model(_maps())
    changed = make_spiking_([model.neck, model.head], T=2)
    assert len(changed) == len(plain_convs) == 3 + 3 + 2 + 2 * 2 + 2  # lateral, fpn, extra, stacked, outputs
    seen, first = _conv_inputs(model, lambda: model(_maps()))
    for name, inputs in seen.items():
        for x in inputs:
            assert x.shape[0] == 2 * 2, name  # T * B
            assert set(x.unique().tolist()) <= {0.0, 1.0}, name
    rate = torch.cat([x.flatten() for v in seen.values() for x in v]).mean()
    assert 0 < rate < 1  # neither silent nor saturated
    assert [c.shape for c in first[0]] == [c.shape for c in plain[0]]  # T-mean: batch 2 again
    with torch.no_grad():
        model(_maps(seed=5, batch=1))  # another image in between
        again = model(_maps())
    assert torch.equal(_flat(first), _flat(again))
    with SynapticOps(model) as ops:
        with torch.no_grad():
            model(_maps())
    rows = ops.table()
    assert len(rows) == len(plain_convs) and all(r["input"] == "spikes" and r["mac_ops"] == 0 for r in rows)
    assert ops.totals()["sops"] > 0  # the convs are charged SOPs (fr x T x MACs), not MACs
    with pytest.raises(ConfigError, match="already spiking"):
        make_spiking_(model.neck)


def test_spiking_seg_head_direct_forward_and_ie_lif():
    torch.manual_seed(0)
    head = _seg_head().eval()
    maps = [torch.randn(2, 16, 32 // 2**i, 32 // 2**i) for i in range(4)]
    changed = make_spiking_(head, T=3)
    assert "conv_seg" in changed and len(changed) == 1 + 1 + 2 + 3 + 1  # scale heads, conv_seg
    seen, out = _conv_inputs(head, lambda: head.forward(maps))  # mmseg's loss/predict call forward directly
    assert out.shape == (2, 5, 32, 32)
    assert all(set(x.unique().tolist()) <= {0.0, 1.0} and x.shape[0] == 6 for v in seen.values() for x in v)
    with torch.no_grad():
        assert torch.equal(head.forward(maps), out)
    neck = _fpn().eval()
    make_spiking_(neck, T=1, neuron="ie-lif", levels=4)
    seen, _ = _conv_inputs(neck, lambda: neck(_maps()))
    values = torch.cat([x.flatten() for v in seen.values() for x in v]).unique()
    assert set((values * 4).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0} and len(values) > 2  # integer spikes k/D
    with pytest.raises(ConfigError, match="neuron='relu' is not allowed; allowed values: lif, ie-lif"):
        make_spiking_(_fpn(), neuron="relu")


def _levels(layer):
    w = layer.quantized_weight().detach()
    return max(w[o].unique().numel() for o in range(w.shape[0]))


def test_quantize_fpn_and_retina_head_except_output_convs():
    model = Detector(_fpn(), _retina_head())
    keys = set(model.state_dict())
    bits = quantize_(model.neck, 3) | quantize_(model.head, 3)
    assert {n for n, b in bits.items() if b == 32} == {"retina_cls", "retina_reg"}
    assert len(bits) == 3 + 3 + 2 + 2 * 2 + 2  # lateral, fpn and extra (skip-path) convs, head convs
    model(_maps())  # initialises the LSQ step sizes
    for part in (model.neck, model.head):
        for name, m in part.named_modules():
            if name in bits:
                assert isinstance(m, QConv2d) and m.bits == bits[name]
                if bits[name] == 32:
                    assert m.quantizer is None and torch.equal(m.quantized_weight(), m.weight)
                else:
                    assert _levels(m) <= 2**3, name
    new_keys = set(model.state_dict()) - keys
    assert keys <= set(model.state_dict()) and all(".quantizer." in k for k in new_keys)
    assert make_spiking_([model.neck, model.head], T=1)  # quantized layers can be spike-fed
    with pytest.raises(ConfigError, match="quantize_ first, then make_spiking_"):
        quantize_(model.neck, 4)
    head = _seg_head()
    bits = quantize_(head, 4, skip=("conv_seg", "scale_heads.0.*"))
    assert bits["conv_seg"] == 32 and bits["scale_heads.0.0.conv"] == 32 and bits["scale_heads.1.0.conv"] == 4
