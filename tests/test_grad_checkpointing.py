"""Activation checkpointing is exact: the same logits, gradients and BatchNorm statistics as a plain run."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bench.errors import ConfigError
from bench.registry import create_model


def _train_step(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.train()
    logits = model(x)
    F.cross_entropy(logits, torch.arange(x.shape[0]) % logits.shape[1]).backward()
    return logits.detach()


@pytest.mark.parametrize("name", ["qsd_tiny", "sdtv2_tiny", "sdt_tiny"])
def test_checkpointed_training_step_equals_the_plain_one(name):
    torch.manual_seed(0)
    plain = create_model(name, num_classes=10)
    cp = copy.deepcopy(plain)
    cp.set_grad_checkpointing(True)
    x = torch.randn(2, 3, 32, 32) * 3  # strong input: the neurons fire
    for _ in range(2):  # the second step starts from the first one's BatchNorm statistics
        assert torch.equal(_train_step(plain, x), _train_step(cp, x))
    for (name_p, p), q in zip(plain.named_parameters(), cp.parameters(), strict=True):
        assert p.grad is not None and torch.equal(p.grad, q.grad), name_p
    for (name_b, b), c in zip(plain.named_buffers(), cp.buffers(), strict=True):
        assert torch.equal(b, c), name_b
    assert any(b.abs().sum() > 0 for n, b in plain.named_buffers() if n.endswith("running_mean"))


def test_checkpointing_is_off_without_gradients_and_refused_where_unsupported():
    model = create_model("qsd_tiny", num_classes=10, grad_checkpointing=True)
    assert model.grad_checkpointing
    with torch.no_grad():
        assert model.train()(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ConfigError, match="grad_checkpointing=True is not supported by .*; allowed: false"):
        create_model("mobile_former_26m", num_classes=10, grad_checkpointing=True)


def test_a_checkpointed_detector_trains_to_the_same_weights(tmp_path):
    from bench.data.coco import write_coco
    from tasks.detection import DetConfig, train

    root = write_coco(tmp_path / "coco", seed=1, train_images=4, val_images=2, size=64)
    weights = {}
    for name, overrides in (("plain", {}), ("cp", dict(grad_checkpointing=True))):
        cfg = DetConfig(
            model="sdtv2_tiny", detector="vitdet_retinanet", data=str(root), overrides=overrides,
            iters=3, batch_size=2, img_scale=64, measure=False,
        )  # fmt: skip
        result = train(cfg, out=tmp_path / name)
        assert result["status"] == "ok", result.get("reason")
        ckpt = torch.load(tmp_path / name / "mm" / "iter_3.pth", map_location="cpu", weights_only=False)
        weights[name] = (ckpt["state_dict"], (tmp_path / name / "metrics.json").read_text())
    (plain, plain_history), (cp, cp_history) = weights["plain"], weights["cp"]
    assert plain_history == cp_history and plain.keys() == cp.keys()
    assert all(torch.equal(plain[k], cp[k]) for k in plain)  # parameters and BatchNorm statistics
