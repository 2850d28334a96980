# RetinaNet 1x at 1333x800 (mmdet's R-50 FPN 1x config), AdamW as the spiking and mobile backbones' papers
# (SDT-V2 / EfficientFormer detection: lr 2e-4, weight decay 0.05) instead of ResNet's SGD.
_base_ = ["mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"]

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2),
)
# mmdet's 1x: 12 epochs at 16 images an iteration (8 GPUs x 2), LR x0.1 after epochs 8 and 11, 500 warm-up
# iterations. spikebench runs iteration loops, so the same schedule in iterations: 7330 an epoch (117,266
# train2017 images with boxes / 16, rounded up), 87,960 in all, steps at 58,640 and 80,630.
iters_per_epoch = 7330
max_iters = 12 * iters_per_epoch
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=max_iters, val_interval=iters_per_epoch)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(
        type="MultiStepLR",
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[8 * iters_per_epoch, 11 * iters_per_epoch],
        gamma=0.1,
    ),
]
