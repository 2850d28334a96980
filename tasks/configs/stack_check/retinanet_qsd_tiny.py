# RetinaNet from the installed mmdet configs around a tiny QSD-Transformer (stack check, CPU).
_base_ = ["mmdet::retinanet/retinanet_r50_fpn_1x_coco.py"]
custom_imports = dict(imports=["tasks.openmm"], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True, type="SpikebenchBackbone", model_name="qsd_tiny", out_indices=(0, 1, 2), T=1
    ),
    neck=dict(in_channels=[16, 32, 64], out_channels=32, start_level=0, num_outs=5),
    bbox_head=dict(
        num_classes=3,
        in_channels=32,
        feat_channels=32,
        stacked_convs=1,
        anchor_generator=dict(strides=[4, 8, 16, 32, 64]),
    ),
)
