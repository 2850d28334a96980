"""Stack check: real mmdet RetinaNet and mmseg Semantic-FPN around a spikebench backbone, on CPU.

Configs inherit from the installed mmdet/mmseg configs (``tasks/configs/stack_check``); one training
step (loss goes down a parameter update) and one inference each.
"""

from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

import tasks.openmm  # noqa: F401  (registers SpikebenchBackbone)

CONFIGS = Path(__file__).resolve().parents[1] / "tasks" / "configs" / "stack_check"


def _step_and_infer(model, data):
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    before = [p.detach().clone() for p in model.backbone.parameters()]
    model.train()
    losses = model.train_step(data, optim)
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total) and total > 0
    changed = sum(not torch.equal(a, p) for a, p in zip(before, model.backbone.parameters(), strict=True))
    assert changed > len(before) // 2  # the update reached the spiking backbone
    model.eval()
    with torch.no_grad():
        return model.test_step(data)


def test_retinanet_with_qsd_backbone_trains_and_predicts():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample

    init_default_scope("mmdet")
    cfg = Config.fromfile(str(CONFIGS / "retinanet_qsd_tiny.py"))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == "RetinaNet" and model.backbone.strides == [4, 8, 16]
    samples = []
    for i in range(2):
        s = DetDataSample(
            metainfo=dict(
                img_shape=(64, 64),
                ori_shape=(64, 64),
                scale_factor=(1.0, 1.0),
                pad_shape=(64, 64),
                batch_input_shape=(64, 64),
            )
        )
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[4.0, 6.0, 30.0, 40.0 + i]]), labels=torch.tensor([i])
        )
        samples.append(s)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)], data_samples=samples
    )
    preds = _step_and_infer(model, data)
    assert len(preds) == 2
    for p in preds:
        assert p.pred_instances.bboxes.shape[1] == 4
        assert len(p.pred_instances.scores) == len(p.pred_instances.labels)


def test_semantic_fpn_with_qsd_backbone_trains_and_predicts():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    init_default_scope("mmseg")
    cfg = Config.fromfile(str(CONFIGS / "semfpn_qsd_tiny.py"))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    assert type(model).__name__ == "EncoderDecoder" and model.backbone.strides == [4, 8, 16, 16]
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 64, 64)))
        samples.append(s)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(2)], data_samples=samples
    )
    preds = _step_and_infer(model, data)
    assert len(preds) == 2 and preds[0].pred_sem_seg.data.shape == (1, 64, 64)
    assert preds[0].pred_sem_seg.data.max() < 150
