"""Hardware-aware energy: the papers' preset reproduces energy_mJ, hand-computed closed forms under every
preset, bit-width and state scaling, and one-line errors for bad hardware files."""

import math

import pytest
import torch
from torch import nn

import bench
from bench.errors import ConfigError
from bench.measure.energy_hw import energy_hw
from bench.measure.hardware_model import load_hardware
from bench.measure.profile import profile_model
from bench.nn.neurons import IELIF, LIF
from bench.nn.quant import QConv2d, QLinear
from bench.registry import list_models, model_entry

# 45 nm constants (bench/measure/hardware/45nm.yaml), pJ; memory per bit = per-64-bit energy / 64
SRAM8K = 10 / 64


def add45(bits):  # linear between 8 b 0.03 and 32 b 0.1, proportional below 8
    return 0.03 * bits / 8 if bits <= 8 else 0.03 + 0.07 * (bits - 8) / 24


def mult45(a, b):  # linear in a x b between 8x8 (0.2) and 32x32 (3.1), proportional below
    p = a * b
    return 0.2 * p / 64 if p <= 64 else 0.2 + 2.9 * (p - 64) / (1024 - 64)


class ConvLinear(nn.Module):
    """Pixels -> 1x1 conv (1 -> 2 channels, 4-bit) -> neuron -> linear (8 -> 3, 4-bit), T = 1."""

    T = 1

    def __init__(self, neuron: nn.Module | None, w_conv: float) -> None:
        super().__init__()
        self.conv = QConv2d(1, 2, 1, bias=False, bits=4)
        self.neuron = neuron
        self.fc = QLinear(8, 3, bias=False, bits=4)
        with torch.no_grad():
            for layer, w in ((self.conv, w_conv), (self.fc, 0.5)):
                layer.weight.fill_(w)
                layer.quantizer.step.fill_(0.5)  # w is a whole number of steps: exact at 4 bits
                layer.quantizer.initialized.fill_(True)

    def spike_driven_(self, enabled: bool = True, fuse: bool = True):
        if isinstance(self.neuron, IELIF):
            self.neuron.spike_driven = enabled
        return self

    def forward(self, x):
        u = self.conv(x).flatten(1).unsqueeze(0)  # [T=1, B, 8]
        if self.neuron is None:
            return self.fc(torch.relu(u)).mean(0)
        self.neuron.reset()
        return self.fc(self.neuron(u)).mean(0)


def _closed_form_45nm(kind: str) -> dict:
    """Hand-computed terms (pJ) of ``ConvLinear`` on ones(1, 1, 2, 2) under 45nm, reuse once per inference.

    conv: 8 real-input MACs, fan-in 1, 4-bit weights x 8-bit pixels, accumulator 4 + 8 + 0 = 12 bits;
    linear: 24 synapses, fan-in 8. binary: LIF (w 4.0 -> h = 2) fires all 8 neurons: 24 SOPs, accumulator
    4 + log2(8) = 7 bits, 8 bitmap bits (address events: 8 x 3 = 24 bits). multi-level: IE-LIF D = 4 (w 0.5
    -> k = 2): 16 spikes, 48 SOPs, accumulator 4 + log2(32) = 9 bits, bitmap 8 x 4 = 32 bits (events 48).
    real: ReLU (an ANN): the linear layer is 24 fp32 MACs on fp32 activations (8 x 32 bits moved in)."""
    conv_c = 8 * (mult45(4, 8) + add45(12))
    conv_w = 2 * 4 * SRAM8K
    conv_a = (4 * 8 + 8 * 12) * SRAM8K
    fc_w = 24 * 4 * SRAM8K
    if kind == "real":
        fc_c, fc_a, state = 24 * (3.7 + 0.9), (8 * 32 + 3 * 32) * SRAM8K, 0.0
    else:
        sops, acc, moved, updates = (24, 7, 8, 8) if kind == "binary" else (48, 9, 32, 32)
        fc_c = sops * add45(acc)
        fc_a = (moved + 3 * acc) * SRAM8K
        state = updates * (2 * 16 * SRAM8K + 2 * add45(16))
    return dict(
        compute=conv_c + fc_c,
        weight_memory=conv_w + fc_w,
        activation_memory=conv_a + fc_a,
        neuron_state=state,
    )


def _net(kind: str) -> ConvLinear:
    return {
        "real": lambda: ConvLinear(None, 1.0),
        "binary": lambda: ConvLinear(LIF(), 4.0),
        "multi": lambda: ConvLinear(IELIF(levels=4), 0.5),
    }[kind]()


@pytest.mark.parametrize("kind", ["real", "binary", "multi"])
def test_closed_forms_of_a_conv_and_a_linear_under_every_preset(kind):
    x = torch.ones(1, 1, 2, 2)
    expected = _closed_form_45nm(kind)
    rec = profile_model(_net(kind), [x], latency_repeats=1, hardware="45nm", check_inference=False)
    got = {k: v * 1e9 for k, v in rec["energy_hw_breakdown_mJ"].items()}
    assert got == pytest.approx(expected, rel=1e-12)
    assert rec["energy_hw_mJ"] == pytest.approx(sum(expected.values()) * 1e-9, rel=1e-12)
    assert rec["conventions"]["energy_hw"]["hardware"] == "45nm"
    paper = profile_model(_net(kind), [x], latency_repeats=1, hardware="paper-45nm", check_inference=False)
    sops = {"real": 0, "binary": 24, "multi": 48}[kind]
    macs = 8 + (24 if kind == "real" else 0)
    assert paper["energy_hw_mJ"] == pytest.approx((4.6 * macs + 0.9 * sops) * 1e-9, rel=1e-12)
    assert paper["energy_hw_mJ"] == paper["energy_mJ"]
    loihi = profile_model(_net(kind), [x], latency_repeats=1, hardware="loihi", check_inference=False)
    # Loihi: SOPs 23.6 pJ (weight read and accumulation included), spikes 1.7 pJ each, neuron updates 52 pJ
    # (81 pJ when the update fires); real-input layers (the conv, and the ANN's linear) as under 45nm
    spikes = {"real": 0, "binary": 8, "multi": 16}[kind]
    updates = {"real": 0, "binary": 8, "multi": 32}[kind]
    want = dict(expected)
    if kind != "real":
        want["compute"] = expected["compute"] - sops * add45(7 if kind == "binary" else 9) + 23.6 * sops
        want["weight_memory"] = 2 * 4 * SRAM8K
        want["activation_memory"] = (4 * 8 + 8 * 12) * SRAM8K + 1.7 * spikes
        want["neuron_state"] = (updates - spikes) * 52 + spikes * 81
    got = {k: v * 1e9 for k, v in loihi["energy_hw_breakdown_mJ"].items()}
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", list_models(tiny=True))
def test_paper_preset_reproduces_energy_mj_bit_for_bit(name):
    model = bench.create_model(name)
    size = model_entry(name).paper.get("img_size", 32)
    rec = profile_model(
        model,
        [torch.randn(1, 3, size, size)],
        latency_repeats=1,
        hardware="paper-45nm",
        check_inference=False,
    )
    assert rec["energy_hw_mJ"] == rec["energy_mJ"] and rec["energy_mJ"] > 0
    assert rec["energy_hw_breakdown_mJ"]["weight_memory"] == 0.0


def _rows_at_bits(rec: dict, bits: int) -> list[dict]:
    """The measured layer rows (firing rates fixed) with every quantized layer's weights at ``bits``."""
    return [dict(r, bits_w=bits if r["bits_w"] < 32 else 32) for r in rec["layers"]]


@pytest.mark.parametrize("name,size", [("qsd_tiny", 32), ("qsd_15m", 32)])
def test_energy_hw_decreases_strictly_with_weight_bits_at_fixed_firing_rates(name, size):
    model = bench.create_model(name)
    rec = profile_model(model, [torch.randn(1, 3, size, size)], latency_repeats=1, check_inference=False)
    hw = load_hardware("45nm")
    totals = dict(mac_ops=rec["MAC_ops_G"] * 1e9, sops=rec["SOPs_G"] * 1e9, outside=0.0)
    energies, wmem = [], []
    for bits in (32, 8, 4, 2):
        e = energy_hw(
            _rows_at_bits(rec, bits),
            rec["firing_rates"],
            hw,
            images=1,
            T=rec["T"],
            bits_w=bits,
            totals=totals,
        )
        energies.append(e["energy_hw_mJ"])
        wmem.append(e["energy_hw_breakdown_mJ"]["weight_memory"])
    assert all(a > b for a, b in zip(energies, energies[1:], strict=False)), energies
    assert all(a > b for a, b in zip(wmem, wmem[1:], strict=False)), wmem


def test_neuron_state_scales_with_neurons_times_T_times_D_and_weights_with_params_times_bits():
    hw = load_hardware("45nm")
    totals = dict(mac_ops=0.0, sops=0.0, outside=0.0)

    def state(neurons, T, D):
        rows = [dict(neuron="n", fr_per_t=[0.1] * T, elements=neurons, levels=D)]
        e = energy_hw([], rows, hw, images=1, T=T, bits_w=4, totals=totals)
        return e["energy_hw_breakdown_mJ"]["neuron_state"]

    base = state(64, 1, 1)
    assert state(64, 4, 1) == pytest.approx(4 * base) and state(64, 4, 4) == pytest.approx(16 * base)
    assert state(128, 4, 4) == pytest.approx(32 * base)  # 128 x 16-bit membranes: still one 8 KB SRAM

    def weights(params, bits):
        row = dict(
            layer="l",
            attention=False,
            first_layer=False,
            macs=params,
            mac_ops=0.0,
            sops=params * 0.1,
            out_elems=1,
            in_levels=1,
            bits_w=bits,
            params=params,
            in_real=0,
            in_planes=params,
            spikes_in=0.1 * params,
            addr_bits=math.ceil(math.log2(params)),
        )
        return energy_hw([row], None, hw, images=1, T=1, bits_w=bits, totals=totals)[
            "energy_hw_breakdown_mJ"
        ]["weight_memory"]

    assert weights(1000, 4) == pytest.approx(2 * weights(1000, 2))
    assert weights(2000, 4) == pytest.approx(2 * weights(1000, 4))


def test_bad_hardware_files_name_the_file_and_field(tmp_path):
    with pytest.raises(ConfigError, match="allowed values: 45nm, loihi, paper-45nm"):
        load_hardware("28nm")
    bad = tmp_path / "mine.yaml"
    events = "{mac: {pj: 1, source: me}, sop: {pj: 1, source: me}}"
    bad.write_text(f"name: mine\nterms: [compute, leakage]\nevents: {events}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: field terms=.*allowed values: compute, weight_memory"):
        load_hardware(str(bad))
    bad.write_text("name: mine\nbase: 45nm\nevents: {sop: {pj: 2}}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: field events.sop=.*'pj' and 'source'"):
        load_hardware(str(bad))
    own = tmp_path / "own.yaml"
    own.write_text("name: own\nbase: 45nm\nwidths: {membrane_bits: {value: 8, source: my chip}}\n")
    hw = load_hardware(str(own))
    assert (
        hw.name == "own"
        and hw.widths["membrane_bits"] == 8
        and hw.sources["widths.membrane_bits"] == "my chip"
    )


class _OnFirstMap(nn.Module):
    """A linear layer on the first map of a feature tuple (a neck or a head)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, feats):
        return (self.fc(feats[0]),)


class _Detector(nn.Module):
    """A backbone + neck + head model in OpenMMLab's attribute layout (no OpenMMLab needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = bench.create_model("qsd_tiny", num_classes=10)
        self.neck = _OnFirstMap(10, 6)
        self.bbox_head = _OnFirstMap(6, 4)

    def forward(self, x):  # pragma: no cover - WholeModel runs the parts
        raise NotImplementedError


def test_dense_parts_carry_energy_hw_and_add_up_to_the_whole():
    pytest.importorskip("mmdet")  # tasks.openmm needs the OpenMMLab stack
    from tasks.openmm.measure import measure_whole_model

    eff = measure_whole_model(_Detector(), [torch.randn(1, 3, 32, 32)], latency_repeats=1)
    parts = eff["parts"]
    assert set(parts) == {"backbone", "neck", "head"}
    assert sum(p["energy_hw_mJ"] for p in parts.values()) == pytest.approx(eff["energy_hw_mJ"], rel=1e-12)
    assert all(p["energy_hw_mJ"] > 0 for p in parts.values())
    assert parts["backbone"]["energy_hw_breakdown_mJ"]["neuron_state"] > 0
    assert parts["neck"]["energy_hw_breakdown_mJ"]["neuron_state"] == 0  # an ANN neck has no membranes
    assert "part_energy_hw" in eff["conventions"]


def test_quantized_ann_twin_and_the_crossover_firing_rate():
    from bench.measure.remeasure import energy_hw_of_record
    from bench.measure.twin import rate_sweep, scaled_record, twin_bits, twin_record

    assert (twin_bits(5, 1), twin_bits(4, 4), twin_bits(1, 4)) == (3, 5, 3)  # ceil(log2(T D + 1))
    rec = profile_model(
        bench.create_model("sdtv2_tiny"),
        [torch.randn(1, 3, 32, 32)],
        latency_repeats=1,
        check_inference=False,
    )
    twin, bits = twin_record(rec)
    assert bits == twin_bits(rec["T"], 1) and twin["SOPs_G"] == 0 and twin["firing_rates"] is None
    spiking_macs = sum(r["macs"] for r in rec["layers"] if not r["first_layer"])
    assert sum(r["mac_ops"] for r in twin["layers"] if not r["first_layer"]) == pytest.approx(
        spiking_macs / rec["T"]
    )
    assert energy_hw_of_record(twin, "45nm", real_bits=bits)["energy_hw_breakdown_mJ"]["neuron_state"] == 0
    s = rate_sweep(rec, "45nm", points=21)
    assert s["measured_energy_hw_mJ"] == pytest.approx(rec["energy_hw_mJ"], rel=1e-9)  # from the record alone
    assert all(a < b for a, b in zip(s["energy_hw_mJ"], s["energy_hw_mJ"][1:], strict=False))
    assert s["crossover_rate"] is not None
    at = scaled_record(rec, s["crossover_rate"] / rec["fr_mean"])
    assert energy_hw_of_record(at, "45nm")["energy_hw_mJ"] == pytest.approx(s["twin_energy_hw_mJ"], rel=1e-3)


def test_spec_hardware_is_a_measurement_option_outside_point_identity(tmp_path):
    from ablations.spec import SpecError, load_spec

    body = (
        "name: hw\nbase: {model: sdt_tiny, data: generated:imagenet-10, epochs: 1}\naxes:\n  bits: [4, 32]\n"
    )
    plain, loihi, bad = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    plain.write_text(body)
    loihi.write_text(body + "hardware: loihi\n")
    bad.write_text(body + "hardware: 7nm\n")
    a, b = load_spec(plain, validate_models=False), load_spec(loihi, validate_models=False)
    assert (a.hardware, b.hardware) == ("45nm", "loihi")
    assert [p.name for p in a.points()] == [p.name for p in b.points()]  # same runs: nothing retrains
    with pytest.raises(SpecError, match=r"c.yaml:5: hardware='7nm' is not allowed; allowed values: 45nm"):
        load_spec(bad, validate_models=False)
