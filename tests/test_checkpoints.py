"""Checkpoint key maps: official names, zero missing/unexpected keys, every converted tensor matters."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import bench
from bench.checkpoints import LAYOUTS, keymap_for, load_checkpoint, to_official
from bench.checkpoints.keymap import to_ours
from bench.errors import ConfigError
from bench.nn.quant import QConv2d
from bench.nn.shortcut import LayerScale

# Official names and shapes read from the official code (see each layout module's docstring), for the
# variant built in LAYOUT_CASES; C = first-stage width.
OFFICIAL_KEYS = {
    "sdt_v1": {  # sdt_tiny: dim 64, 4 heads
        "patch_embed.proj_conv.weight": (8, 3, 3, 3),
        "patch_embed.proj_bn3.running_var": (64,),
        "patch_embed.rpe_conv.weight": (64, 64, 3, 3),
        "block.0.attn.q_conv.weight": (64, 64, 1, 1),
        "block.0.attn.proj_conv.bias": (64,),
        "block.1.attn.talking_heads.weight": (4, 4, 1),
        "block.1.mlp.fc1_conv.weight": (256, 64, 1, 1),
        "block.1.mlp.fc2_bn.num_batches_tracked": (),
        "head.weight": (10, 64),
    },
    "sdt_v2": {  # sdtv2_tiny: dims 16, 32, 64, 80
        "downsample1_1.encode_conv.weight": (8, 3, 7, 7),
        "ConvBlock1_1.0.Conv.pwconv1.weight": (16, 8, 1, 1),
        "ConvBlock1_1.0.Conv.dwconv.weight": (16, 1, 7, 7),
        "ConvBlock2_2.0.conv2.weight": (32, 128, 3, 3),
        "downsample4.encode_conv.bias": (80,),
        "block3.0.attn.q_conv.0.body.0.weight": (64, 64, 1, 1),
        "block3.0.attn.q_conv.0.body.1.bn.running_mean": (64,),
        "block3.0.attn.k_conv.0.body.2.0.weight": (64, 1, 3, 3),
        "block3.0.attn.proj_conv.1.weight": (64,),
        "block4.0.mlp.fc1_conv.weight": (320, 80, 1),
        "block4.0.mlp.fc2_bn.running_var": (80,),
        "head.weight": (10, 80),
    },
    "qsd": {  # qsd_tiny
        "downsample1_1.encode_conv.alpha": (8,),
        "downsample1_1.encode_conv.init_state": (1,),
        "downsample1_1.encode_conv.act.zero_point": (3,),
        "ConvBlock1_2.0.conv1.act.alpha": (16,),
        "block3.0.layer_scale1": (64,),
        "block3.2.mlp.fc2_conv.weight": (64, 256, 1),
        "block4.0.attn.v_conv.0.body.2.1.alpha": (80,),
        "head.alpha": (10,),
        "head.act.signed": (1,),
    },
    "timm": {  # mobilevit_tiny = timm mobilevit_xxs
        "stem.conv.weight": (16, 3, 3, 3),
        "stages.2.1.transformer.0.attn.qkv.weight": (192, 64),
        "final_conv.conv.weight": (320, 80, 1, 1),
        "head.fc.weight": (10, 320),
    },
    "cvnets_mobilevit": {  # mobilevit_tiny = MobileViT-XXS (layer_3: 48 channels, transformer 64, ffn 128)
        "conv_1.block.conv.weight": (16, 3, 3, 3),
        "layer_1.0.block.exp_1x1.block.norm.running_var": (32,),
        "layer_3.1.local_rep.conv_1x1.block.conv.weight": (64, 48, 1, 1),
        "layer_3.1.global_rep.1.pre_norm_mha.1.qkv_proj.weight": (192, 64),
        "layer_3.1.global_rep.0.pre_norm_ffn.1.weight": (128, 64),
        "layer_3.1.global_rep.2.weight": (64,),
        "layer_3.1.fusion.block.conv.weight": (48, 96, 3, 3),
        "conv_1x1_exp.block.conv.weight": (320, 80, 1, 1),
        "classifier.fc.weight": (10, 320),
    },
    "snap_efficientformer": {  # efficientformer_l1 at 64 px
        "patch_embed.0.weight": (24, 3, 3, 3),
        "patch_embed.4.running_var": (48,),
        "network.0.0.mlp.fc1.weight": (192, 48, 1, 1),
        "network.0.0.layer_scale_1": (48,),
        "network.1.proj.weight": (96, 48, 3, 3),
        "network.6.4.token_mixer.qkv.weight": (1536, 448),
        "network.6.4.layer_scale_2": (448,),
        "dist_head.weight": (10, 448),
    },
}
# Spiking models are built with neuron="relu" (same tensors and names; neurons hold none) so that the
# output is a continuous function of every weight: on random weights a spike threshold hides perturbations.
LAYOUT_CASES = {
    "sdt_v1": ("sdt_tiny", dict(neuron="relu"), 32),
    "sdt_v2": ("sdtv2_tiny", dict(neuron="relu"), 32),
    "qsd": ("qsd_tiny", dict(neuron="relu"), 32),
    "timm": ("mobilevit_tiny", {}, 64),
    "cvnets_mobilevit": ("mobilevit_tiny", {}, 64),
    "snap_efficientformer": ("efficientformer_l1", dict(img_size=64, num_classes=10), 64),
}
SAMPLE = 6  # perturbed tensors per layout (plus every reshaped or re-named special tensor)
NOT_READ = ("num_batches_tracked", "init_state")  # BN counter, LSQ flag: no effect on eval output


@torch.no_grad()
def _activate(model: nn.Module, x: torch.Tensor) -> None:
    """BN statistics calibrated on ``x`` (one train-mode pass, momentum 1) with random affine parameters and
    layer scales of order 1, so that activations stay of order 1 and every weight matters."""
    g = torch.Generator().manual_seed(0)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.8 + 0.8)
        m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.5)
        m.momentum = 1.0
    for m in model.modules():
        if isinstance(m, LayerScale):
            m.gamma.copy_(torch.rand(m.gamma.shape, generator=g) * 0.5 + 0.5)
    model.train()
    model(x)
    model.eval()
    for m in bns:
        m.momentum = 0.1


def _perturbed(name: str, t: torch.Tensor) -> torch.Tensor:
    if not t.is_floating_point():
        return t.flip(-1)
    g = torch.Generator().manual_seed(1)
    out = t + (t.abs().mean() + 0.5) * torch.randn(t.shape, generator=g)
    return out.abs() + 0.05 if name.endswith(("running_var", "alpha")) else out


def _build(layout: str):
    name, kw, px = LAYOUT_CASES[layout]
    torch.manual_seed(0)
    model = bench.create_model(name, **kw)
    x = torch.rand(1, 3, px, px, generator=torch.Generator().manual_seed(2)) * 2 - 1
    _activate(model, x)  # also initialises the LSQ steps before the map reads them
    return model, x


@pytest.mark.parametrize("layout", list(LAYOUT_CASES))
def test_official_layout_loads_and_every_tensor_matters(layout: str) -> None:
    model, x = _build(layout)
    km = keymap_for(layout, model)
    state = to_official(km, model)
    for key, shape in OFFICIAL_KEYS[layout].items():
        assert key in state, f"{layout}: official key {key} not produced"
        assert tuple(state[key].shape) == shape, key
    ours, report = to_ours(km, state, model, "test")
    assert set(ours) == set(model.state_dict())  # zero missing (ours) ...
    assert report["tensors_loaded"] + len(report["dropped"]) == len(state)  # ... and zero unexpected
    model.load_state_dict(ours, strict=True)
    with torch.no_grad():
        base = model(x)
    special = [p.official for p in km.pairs if p.official != p.ours.removeprefix("net.")]
    special = [k for k in special if k.endswith(("alpha", "layer_scale1", "_conv.weight", "layer_scale_2"))]
    candidates = [p.official for p in km.pairs if not p.official.endswith(NOT_READ)]
    rng = random.Random(layout)
    chosen = sorted(set(rng.sample(candidates, SAMPLE)) | set(special[:3]) | {"head.weight"} & set(state))
    unchanged = []
    for key in chosen:
        bad = dict(state)
        bad[key] = _perturbed(key, state[key])
        model.load_state_dict(to_ours(km, bad, model, "test")[0], strict=True)
        with torch.no_grad():
            if torch.equal(model(x), base):
                unchanged.append(key)
    assert not unchanged, f"{layout}: perturbing {unchanged} did not change the output"


def test_qsd_identity_activation_quantizers_are_dropped_and_counted() -> None:
    km = keymap_for("qsd", bench.create_model("qsd_15m"))
    act = [d for d in km.dropped if d.official.endswith(("act.alpha", "act.zero_point"))]
    assert sum(int(np.prod(d.shape)) for d in act) == 85_430  # figure of the issue, from the official code
    assert {d.reason for d in km.dropped} == {"QSD ActLSQ: forward is the identity"}


def test_files_in_every_wrapper_load_through_create_model(tmp_path) -> None:
    model, x = _build("sdt_v1")
    with torch.no_grad():
        want = model(x)
    state = to_official(keymap_for("sdt_v1", model), model)
    path = tmp_path / "sdt.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    loaded = bench.create_model("sdt_tiny", checkpoint=str(path), neuron="relu").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), want)
    rep = loaded.checkpoint_report
    assert rep["layout"] == "sdt_v1" and rep["dropped"] == [
        f"block.{i}.attn.talking_heads.weight" for i in (0, 1)
    ]
    # our own run checkpoint (``checkpoints/last.pt``: model, optimizer, numpy RNG state)
    run = tmp_path / "last.pt"
    torch.save({"model": loaded.state_dict(), "rng": dict(numpy=np.random.get_state())}, run)
    again = bench.create_model("sdt_tiny", checkpoint=str(run), neuron="relu").eval()
    with torch.no_grad():
        assert torch.equal(again(x), want)
    assert again.checkpoint_report["layout"] == "spikebench"


def test_quantized_model_fine_tunes_from_a_full_precision_run(tmp_path) -> None:
    fp = bench.create_model("qsd_tiny", bits=32).eval()
    path = tmp_path / "last.pt"
    torch.save({"model": fp.state_dict(), "epoch": 3}, path)
    q = bench.create_model("qsd_tiny", bits=2, checkpoint=str(path)).eval()
    rep = q.checkpoint_report
    assert rep["layout"] == "spikebench" and "head" in rep["steps_initialised_on_first_forward"]
    assert torch.equal(q.head.weight, fp.head.weight) and not bool(q.head.quantizer.initialized)
    with torch.no_grad():
        q(torch.randn(2, 3, 32, 32))
    want = 2 * fp.head.weight.abs().mean()  # LSQ: 2 mean|w| / sqrt(Qp), Qp = 1 at 2 bits
    assert torch.allclose(q.head.quantizer.step, want.expand_as(q.head.quantizer.step))


def test_bad_checkpoint_is_one_line_listing_keys(tmp_path) -> None:
    model, _ = _build("qsd")
    state = to_official(keymap_for("qsd", model), model)
    del state["block3.0.layer_scale1"]
    state["block3.0.extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ConfigError) as e:
        load_checkpoint(bench.create_model("qsd_tiny"), path, "qsd")
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    assert "missing 1: block3.0.layer_scale1" in msg and "unexpected 1: block3.0.extra.weight" in msg
    torch.save({"stem.whatever": torch.zeros(1)}, path)
    with pytest.raises(ConfigError, match="allowed layouts: spikebench, qsd"):
        bench.create_model("qsd_tiny", checkpoint=str(path))
    state = to_official(keymap_for("qsd", model), model)
    state["head.weight"] = torch.zeros(3, 80)
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"wrong shape.*head.weight \(3, 80\) -> head.weight \(10, 80\)"):
        bench.create_model("qsd_tiny", checkpoint=str(path), num_classes=10)


def test_loaded_lsq_step_is_never_reinitialised() -> None:
    conv = QConv2d(4, 3, 3, bits=4).eval()
    state = conv.state_dict()  # never run: ``initialized`` is False in the file
    assert not bool(state["quantizer.initialized"])
    state["quantizer.step"] = torch.tensor([0.5, 0.25, 0.125])
    fresh = QConv2d(4, 3, 3, bits=4).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        fresh(torch.randn(1, 4, 5, 5))
    assert torch.equal(fresh.quantizer.step, torch.tensor([0.5, 0.25, 0.125]))
    assert bool(fresh.quantizer.initialized)


def test_sdt_v2_distillation_head_is_folded_once(tmp_path, monkeypatch) -> None:
    model, x = _build("sdt_v2")
    state = to_official(keymap_for("sdt_v2", model), model)
    w, b = state["head.weight"], state["head.bias"]
    state["head_kd.weight"], state["head_kd.bias"] = w.flip(0), b.flip(0)
    torch.save({"model": state}, tmp_path / "kd.pth")
    calls = []
    real = LAYOUTS["sdt_v2"].prepare
    monkeypatch.setattr(LAYOUTS["sdt_v2"], "prepare", lambda st: calls.append(1) or real(st))
    loaded = bench.create_model("sdtv2_tiny", checkpoint=str(tmp_path / "kd.pth"))
    assert torch.equal(loaded.head.weight, (w + w.flip(0)) / 2)
    assert loaded.checkpoint_report["notes"]
    assert len(calls) == 1  # sizing the head from the checkpoint and loading it share one prepared state


def _paper_csv(path) -> str:
    header = "system,paper,arxiv,task,dataset,model,variant,metric,value,unit,params_m,flops_g,bits_w,bits_a,"
    header += "timesteps,energy_mj,source_table,note\n"
    row = "QSD-Transformer,QSD (ICLR 2025),2501.13492,classification,ImageNet-1K,QSD-Transformer,"
    row += '"headline (W4 / binary spike / T=4)",top1,80.3,%,,,4,1,4,,Abstract,test copy\n'
    path.write_text(header + row)
    return str(path)


def test_eval_cli_writes_record_and_compares_with_the_paper(tmp_path, capsys) -> None:
    import argparse
    import json

    from tasks.classification.cli import register_eval
    from tasks.classification.eval import paper_rows, print_comparison

    model, _ = _build("qsd")
    path = tmp_path / "qsd_official.pth"
    torch.save({"model": to_official(keymap_for("qsd", model), model)}, path)
    parser = argparse.ArgumentParser()
    register_eval(parser.add_subparsers())
    argv = ["classification", "--model", "qsd_tiny", "--neuron", "relu", "--checkpoint", str(path)]
    argv += [
        "--data",
        "generated:imagenet-10",
        "--limit",
        "12",
        "--batch-size",
        "4",
        "--measure-batches",
        "1",
    ]
    args = parser.parse_args(
        argv + ["--out", str(tmp_path), "--paper-csv", _paper_csv(tmp_path / "paper.csv")]
    )
    assert args.func(args) == 0
    rec = json.loads((tmp_path / "eval.json").read_text())
    assert rec["status"] == "ok" and rec["images"] == 12 and 0 <= rec["metrics"]["top1"] <= 100
    assert rec["checkpoint"]["layout"] == "qsd" and rec["checkpoint"]["dropped_values"] > 0
    assert rec["efficiency"]["MACs_G"] > 0 and rec["preprocess"]["crop_pct"] == 0.875
    assert rec["paper"] is None  # a tiny model has no published row
    assert "(measured)" in capsys.readouterr().out
    # a paper model: the explicit row mapping and the labelled comparison
    rows = paper_rows("qsd_8_512", 1, tmp_path / "paper.csv")
    assert [(r["metric"], r["value"]) for r in rows] == [("top1", "80.3")]
    rec = dict(rec, model="qsd_8_512", metrics=dict(top1=79.1, top5=94.0))
    rec["paper"] = dict(rows=[dict(metric="top1", paper=80.3, measured=79.1, delta=-1.2, paper_row="QSD")])
    print_comparison(rec)
    out = capsys.readouterr().out
    assert "paper" in out and "measured" in out and "-1.20" in out


def test_eval_cli_sizes_the_classifier_from_a_run_on_other_classes(tmp_path) -> None:
    """A run trained on 3 classes evaluates with no class count given: the head comes from the checkpoint,
    and the evaluation reproduces the run's own last top-1."""
    import argparse
    import json

    from bench.data.generate import write_imagenet_folder
    from tasks.classification import TrainConfig, train
    from tasks.classification.cli import register_eval

    data = write_imagenet_folder(tmp_path / "d", num_classes=3, train_per_class=8, val_per_class=4, size=16)
    cfg = TrainConfig(model="qsd_tiny", data=str(data), epochs=1, batch_size=4, img_size=16, measure=False)
    train(cfg, out=tmp_path / "run", progress=False)
    parser = argparse.ArgumentParser()
    register_eval(parser.add_subparsers())
    last = str(tmp_path / "run" / "checkpoints" / "last.pt")
    argv = ["classification", "--model", "qsd_tiny", "--checkpoint", last, "--data", str(data)]
    argv += ["--img-size", "16", "--no-measure", "--out", str(tmp_path / "eval")]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    rec = json.loads((tmp_path / "eval" / "eval.json").read_text())
    run = json.loads((tmp_path / "run" / "result.json").read_text())
    assert rec["classes"] == 3 and rec["checkpoint"]["layout"] == "spikebench"
    assert rec["metrics"]["top1"] == pytest.approx(run["top1"])
    with pytest.raises(ConfigError, match=r"head.weight \(3, 80\) -> head.weight \(10, 80\)"):
        bench.create_model("qsd_tiny", checkpoint=last, num_classes=10)


def test_every_paper_mapping_resolves_in_the_reference_csv() -> None:
    from tasks.classification.eval import PAPER_ROWS, default_paper_csv, paper_rows

    csv_path = default_paper_csv()
    missing = [n for n in PAPER_ROWS if not paper_rows(n, 4, csv_path)]
    assert not missing, f"{csv_path}: no row for {missing}"
    assert [r["value"] for r in paper_rows("sdt_8_512", 1, csv_path)] == ["71.68"]  # T picks the row


def test_training_starts_from_an_official_checkpoint(tmp_path) -> None:
    from bench.data.generate import write_imagenet_folder
    from tasks.classification.config import TrainConfig
    from tasks.classification.train import train

    data = write_imagenet_folder(tmp_path / "in10", 10, 2, 1, size=32, seed=3)
    model, _ = _build("sdt_v1")
    path = tmp_path / "sdt.pth"
    torch.save({"model": to_official(keymap_for("sdt_v1", model), model)}, path)
    cfg = TrainConfig(
        model="sdt_tiny",
        data=str(data),
        overrides=dict(neuron="relu"),
        epochs=1,
        batch_size=20,
        measure=False,
    )
    assert cfg.digest() == TrainConfig(**{**cfg.as_dict(), "checkpoint": None}).digest()
    tuned = TrainConfig(**{**cfg.as_dict(), "checkpoint": str(path)})
    assert tuned.digest() != cfg.digest()  # the checkpoint is part of the run's identity
    result = train(tuned, out=tmp_path / "run", progress=False)
    assert result["status"] == "ok" and result["checkpoint"]["layout"] == "sdt_v1"
