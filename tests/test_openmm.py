"""The shared OpenMMLab layer: named configs filled from feature_info, atomic checkpoints, whole-model
measurement of a real mmseg segmentor (parts add up), the registered hooks and model builder."""

from __future__ import annotations

import pytest
import torch

from bench.errors import ConfigError
from tasks.openmm.config import config_path, feature_maps, load_config


def test_named_configs_inherit_the_installed_bases():
    path = config_path("segmentation", "semfpn", "paper")
    assert "mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py" in path.read_text()
    with pytest.raises(ConfigError, match="allowed values: .*semfpn_tiny.*upernet_tiny"):
        config_path("segmentation", "deeplab", "tiny")
    with pytest.raises(ConfigError, match="size='huge' is not allowed; allowed values: tiny, paper"):
        config_path("segmentation", "semfpn", "huge")


def test_feature_maps_follow_feature_info():
    assert [(m["channels"], m["stride"]) for m in feature_maps("qsd_tiny", {})] == [
        (16, 4),
        (32, 8),
        (64, 16),
        (80, 16),
    ]
    assert [m["stride"] for m in feature_maps("mobilevit_tiny", {})] == [4, 8, 16, 32]  # stride-2 map dropped
    assert [m["stage"] for m in feature_maps("sdt_tiny", {})] == [1]
    with pytest.raises(ConfigError, match="out_indices=.*allowed values: 0..3"):
        feature_maps("qsd_tiny", {}, out_indices=(7,))


def test_load_config_fills_the_run(tmp_path):
    from tasks.segmentation.build import _fill
    from tasks.segmentation.config import SegConfig

    cfg = SegConfig(model="qsd_tiny", overrides=dict(T=2, bits=4))
    mm = load_config(
        config_path("segmentation", "semfpn", "paper"),
        model="qsd_tiny",
        overrides=dict(T=2, bits=4),
        data_root=tmp_path,
        work_dir=tmp_path / "w",
        seed=3,
        iters=100,
        checkpoint_interval=50,
        fill=_fill(cfg),
    )
    bb = mm.model.backbone
    assert bb.type == "SpikebenchBackbone" and bb.T == 2 and bb.bits == 4 and bb.out_indices == (0, 1, 2, 3)
    assert mm.model.neck.in_channels == [16, 32, 64, 80] and mm.model.neck.out_channels == 256
    assert mm.model.decode_head.feature_strides == [4, 8, 16, 16] and mm.model.decode_head.channels == 128
    assert mm.train_cfg.max_iters == 100 and mm.default_hooks.checkpoint.interval == 50
    assert [(s["begin"], s["end"]) for s in mm.param_scheduler] == [(0, 1), (1, 100)]  # 160k scaled to 100
    assert mm.randomness == dict(seed=3, deterministic=True)
    assert mm.train_dataloader.dataset.data_root == f"{tmp_path}/"
    assert {h["type"] for h in mm.custom_hooks} >= {"NeuronResetHook", "RngStateHook"}
    assert mm.optim_wrapper.optimizer.type == "AdamW" and mm.optim_wrapper.optimizer.lr == 1e-3


def test_strides_that_do_not_fit_are_one_line_errors():
    from tasks.openmm.config import check_strides

    with pytest.raises(ConfigError, match=r"feature strides \[8, 4\] do not fit semfpn"):
        check_strides("x", [dict(stride=8), dict(stride=4)], "semfpn")


def test_checkpoints_are_written_atomically(tmp_path):
    from mmengine.fileio import get_file_backend

    from tasks.openmm.run import AtomicLocalBackend, latest_checkpoint

    backend = get_file_backend(str(tmp_path), backend_args=dict(backend="spikebench_atomic"))
    assert isinstance(backend, AtomicLocalBackend)
    for it in (2, 10, 4):
        backend.put(b"x" * it, tmp_path / f"iter_{it}.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_10.pth", "iter_2.pth", "iter_4.pth"]
    assert latest_checkpoint(tmp_path).name == "iter_10.pth"


def test_whole_segmentor_measurement_parts_add_up(tmp_path):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import tasks.openmm  # noqa: F401
    from tasks.openmm.measure import measure_whole_model
    from tasks.segmentation.build import mm_config
    from tasks.segmentation.config import SegConfig

    init_default_scope("mmseg")
    cfg = SegConfig(model="sdtv2_tiny", segmentor="upernet", crop=32, overrides=dict(T=2))
    net = MODELS.build(mm_config(cfg, tmp_path, tmp_path / "w").model).eval()
    eff = measure_whole_model(net, [torch.randn(1, 3, 32, 32)], latency_repeats=1)
    parts = eff["parts"]
    assert set(parts) == {"backbone", "head"} and eff["auxiliary_head"]["MACs_G"] > 0
    for key in ("params_M", "MACs_G", "MAC_ops_G", "SOPs_G", "energy_mJ"):
        assert sum(p[key] for p in parts.values()) == pytest.approx(eff[key], rel=1e-12)
    assert parts["backbone"]["SOPs_G"] > 0 and parts["head"]["SOPs_G"] == 0  # ANN head: real inputs
    assert parts["backbone"]["fr_mean"] > 0 and eff["T"] == 2
    rates = eff["firing_rates"]  # per spiking layer, named from its part: the silent-layer check sees them
    assert rates and all(r["neuron"].startswith("backbone.") and len(r["fr_per_t"]) == 2 for r in rates)
    assert "auxiliary head: training-only" in eff["conventions"]["whole_model"]


def test_distilled_maps_are_paired_by_stride_and_mismatches_refused():
    """A spiking student (qsd_tiny: strides 4, 8, 16, 16) and an ANN teacher (mobilevit_tiny: 2, 4, 8, 16, 32)
    on the same input: maps pair by stride, never by position; a stride or width the teacher lacks is refused
    in one line naming both shapes (the MSE never broadcasts)."""
    import bench
    from bench.nn.distill import QFDLoss
    from tasks.openmm.distill import FeatureDistillHook, stride_match

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        student = tuple(bench.create_model("qsd_tiny", num_classes=0).eval().forward_features(x))
        teacher = tuple(bench.create_model("mobilevit_tiny", num_classes=0).eval().forward_features(x))
    assert [tuple(f.shape[-2:]) for f in student] == [(16, 16), (8, 8), (4, 4), (4, 4)]
    assert [tuple(f.shape[-2:]) for f in teacher][-1] == (2, 2)
    assert [stride_match(x, student, teacher, i) for i in range(4)] == [1, 2, 3, 3]
    with pytest.raises(ConfigError, match=r"student map 4 \[2, 320, 2, 2\] \(stride 32\) has no teacher map"):
        stride_match(x, teacher, student, 4)  # the other way round: no stride-32 map in qsd_tiny
    hook = FeatureDistillHook(teacher="unused", indices=(0,))
    with pytest.raises(ConfigError, match=r"distill neck level 0: student map \[2, 16, 16, 16\] and teacher"):
        hook._pair(x, student, teacher)  # widths 16 vs the teacher's, same stride
    same = tuple(torch.randn(2, 16, *f.shape[-2:]) for f in teacher)
    with pytest.raises(ConfigError, match="differ; allowed: equal shapes"):
        QFDLoss(1, 1)(student[0], same[2])
    assert hook._pair(x, student[:1], same) == [(0, 1)]


def test_history_hook_reads_a_loss_that_requires_grad_without_a_warning():
    import warnings
    from types import SimpleNamespace

    from tasks.openmm.history import HistoryHook

    hook = HistoryHook(interval=100)
    loss = (torch.ones(3, requires_grad=True) * 2).sum()  # what mmengine's train step hands the hooks
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when float() reads a tensor that requires grad
        hook.after_train_iter(SimpleNamespace(iter=0, max_iters=100), 0, outputs={"loss": loss})
    assert hook.losses == [6.0]
