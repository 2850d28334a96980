# RetinaNet 1x at 1333x800 (mmdet's R-50 FPN 1x config), AdamW as the spiking and mobile backbones' papers
# (SDT-V2 / EfficientFormer detection: lr 2e-4, weight decay 0.05) instead of ResNet's SGD.
_base_ = ["mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"]

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=0.05),
    clip_grad=dict(max_norm=35, norm_type=2),
)
