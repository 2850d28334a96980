"""Spiking backbones: paper parameter counts, options, features, spike-driven inference, errors."""

import pytest
import torch

import bench
from bench.errors import ConfigError
from bench.nn.neurons import Spikes
from bench.nn.quant import QUANTIZED_LAYERS

SDT_PAPER = {
    "sdt_8_384": 16.81,
    "sdt_6_512": 23.37,
    "sdt_8_512": 29.68,
    "sdt_10_512": 36.01,
    "sdt_8_768": 66.34,
}


@pytest.mark.parametrize("name", sorted(SDT_PAPER))
def test_sdt_parameter_counts_match_the_paper(name):
    params = bench.create_model(name).num_params() / 1e6
    paper = SDT_PAPER[name]
    print(f"{name}: {params:.3f} M (paper {paper} M, {100 * (params / paper - 1):+.3f} %)")
    assert abs(params / paper - 1) < 0.005


def test_metaformer_parameter_counts_match_official_code():
    # Counts of the official SDT-V2 code on CPU (shared/reference/architectures.md): 31.33 M and 55.35 M.
    assert abs(bench.create_model("sdtv2_8_384").num_params() / 1e6 - 31.33) < 0.01
    assert abs(bench.create_model("sdtv2_8_512").num_params() / 1e6 - 55.35) < 0.01
    qsd = bench.create_model("qsd_8_512")
    steps = sum(m.quantizer.step.numel() for m in qsd.modules() if isinstance(m, QUANTIZED_LAYERS))
    layer_scales = sum(p.numel() for n, p in qsd.named_parameters() if n.endswith("gamma"))
    assert qsd.num_params() - steps - layer_scales == bench.create_model("sdtv2_8_512").num_params()


def test_every_model_has_a_registry_entry_and_tiny_variants_exist():
    names = bench.list_models()
    for fam in ("sdt", "sdt_v2", "qsd"):
        assert bench.list_models(family=fam, tiny=True), fam
    assert {"sdt_8_384", "sdt_2_512_cifar", "sdtv2_8_512", "qsd_15m", "qsd_8_384", "qsd_8_512"} <= set(names)


@pytest.mark.parametrize("name", ["sdt_tiny", "sdtv2_tiny", "qsd_tiny"])
def test_features_report_documented_channels_and_strides(name):
    m = (
        bench.create_model(name, out_indices=None)
        if name != "sdt_tiny"
        else bench.create_model(name, out_indices=(0, 1))
    )
    x = torch.randn(2, 3, 64, 64)
    feats = m.forward_features(x)
    assert len(feats) == len(m.out_indices)
    for f, i in zip(feats, m.out_indices, strict=True):
        info = m.feature_info[i]
        assert f.shape == (2, info["num_chs"], 64 // info["reduction"], 64 // info["reduction"])


@pytest.mark.parametrize("name", ["sdt_tiny", "sdtv2_tiny", "qsd_tiny"])
@pytest.mark.parametrize("attention", ["sdsa", "q-sdsa", "ssa", "softmax"])
@pytest.mark.parametrize("shortcut", ["ms", "sew", "vanilla"])
def test_every_attention_and_shortcut_trains(name, attention, shortcut):
    m = bench.create_model(name, attention=attention, shortcut=shortcut, T=2)
    x = torch.randn(2, 3, 32, 32)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([1, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert len(grads) > 0.5 * len(list(m.parameters()))


def _spike_driven_check(name, **kw):
    m = bench.create_model(name, **kw)
    x = torch.randn(4, 3, 32, 32) * 2
    m.train()
    for _ in range(3):
        m(x)  # BN statistics and LSQ initialisation
    m.eval()
    first = None
    inputs = []
    with torch.no_grad():
        ref = m(x)
        m.spike_driven_(True, fuse=True)  # folded convs: every synapse after the first layer sees spikes
        hooks = [
            layer.register_forward_pre_hook(lambda mod, inp: inputs.append(inp[0]))
            for layer in m.modules()
            if isinstance(layer, QUANTIZED_LAYERS)
        ]
        out = m(x)
        for h in hooks:
            h.remove()
        m.spike_driven_(False)
        again = m(x)
    first, rest = inputs[0], inputs[1:]
    planes = [t.planes if isinstance(t, Spikes) else t for t in rest]
    nonbinary = sum(int(not ((p == 0) | (p == 1)).all()) for p in planes)
    return ref, out, again, first, rest, nonbinary


@pytest.mark.parametrize(
    "name,kw",
    [
        ("qsd_tiny", {}),
        ("qsd_tiny", {"T": 3}),
        ("sdtv2_tiny", {"neuron": "ie-lif"}),
        ("sdt_tiny", {"neuron": "ie-lif"}),
        ("sdt_tiny", {}),
        ("qsd_tiny", {"rectify": True}),
    ],
)
def test_spike_driven_inference_equals_training_mode_and_is_binary(name, kw):
    ref, out, again, first, rest, nonbinary = _spike_driven_check(name, **kw)
    assert torch.allclose(out, ref, atol=1e-5), (out - ref).abs().max()
    assert torch.equal(again, ref)  # switching back restores the trainable network
    assert first.shape[1] == 3  # the first layer sees pixels
    assert nonbinary == 0
    if kw.get("neuron", "ie-lif" if name == "qsd_tiny" else "lif") == "ie-lif":
        assert any(isinstance(t, Spikes) and t.planes.shape[0] >= 4 for t in rest)  # D virtual steps


def test_sew_shortcut_feeds_non_binary_values_to_synapses():
    *_, rest, nonbinary = _spike_driven_check("qsd_tiny", shortcut="sew")
    values = torch.cat([(t.to_tensor() if isinstance(t, Spikes) else t).flatten() for t in rest])
    print(f"SEW: {nonbinary} of {len(rest)} synaptic inputs are non-binary; max value {values.max():.2f}")
    assert nonbinary > 0 and values.max() > 1


def test_bits_first_and_head_overrides():
    m = bench.create_model("qsd_tiny", bits=2, bits_first=8, bits_head=32)
    assert m.stem.conv.bits == 8 and m.head.bits == 32 and m.stage2[0].conv.bits == 2


@pytest.mark.parametrize(
    "kw,msg",
    [
        (dict(bits=0), "bits=0 is not allowed; allowed values: 1..8 or 32"),
        (dict(bits=16), "bits=16 is not allowed"),
        (dict(bits_head=64), "bits_head=64 is not allowed"),
        (dict(T=0), "T=0 is not allowed; allowed values: integers >= 1"),
        (
            dict(attention="flash"),
            "attention='flash' is not allowed; allowed values: sdsa, q-sdsa, sdsa-3, ssa, softmax",
        ),
        (
            dict(shortcut="sewn"),
            "shortcut='sewn' is not allowed; allowed values: ms, sew, vanilla (did you mean sew?)",
        ),
        (dict(neuron="plif"), "neuron='plif' is not allowed; allowed values: lif, ie-lif"),
        (dict(stage3_stride=4), "stage3_stride=4 is not allowed; allowed values: 1, 2"),
    ],
)
def test_bad_options_give_one_line_errors(kw, msg):
    with pytest.raises(ConfigError) as err:
        bench.create_model("qsd_tiny", **kw)
    assert msg in str(err.value) and "\n" not in str(err.value)


def test_stage3_stride_one_gives_stages_3_and_4_two_by_two_tokens_at_16_px():
    torch.manual_seed(0)
    default, s1 = (bench.create_model("qsd_tiny", stage3_stride=s).eval() for s in (2, 1))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        grids = [[tuple(f.shape[-2:]) for f in m.forward_stages(x)] for m in (default, s1)]
    assert grids == [[(4, 4), (2, 2), (1, 1), (1, 1)], [(4, 4), (2, 2), (2, 2), (2, 2)]]
    assert [f["reduction"] for f in s1.feature_info] == [4, 8, 8, 8]
    assert [f["reduction"] for f in default.feature_info] == [4, 8, 16, 16]
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in (default, s1)]
    assert shapes[0] == shapes[1]


def test_unknown_model_lists_closest_names():
    with pytest.raises(ConfigError) as err:
        bench.create_model("sdt_8_38")
    text = str(err.value)
    assert "unknown model 'sdt_8_38'" in text and "sdt_8_384" in text and "\n" not in text


def test_unknown_option_is_a_one_line_error():
    with pytest.raises(ConfigError) as err:
        bench.create_model("sdt_tiny", pretrained=True)
    assert "unknown option 'pretrained'; allowed options: T, bits" in str(err.value)
