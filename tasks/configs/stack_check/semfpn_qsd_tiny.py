# Semantic FPN from the installed mmseg configs around a tiny QSD-Transformer (stack check, CPU).
_base_ = ["mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py"]
custom_imports = dict(imports=["tasks.openmm"], allow_failed_imports=False)

norm_cfg = dict(type="BN", requires_grad=True)
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(
        _delete_=True, type="SpikebenchBackbone", model_name="qsd_tiny", out_indices=(0, 1, 2, 3), T=1
    ),
    neck=dict(in_channels=[16, 32, 64, 80], out_channels=32),
    decode_head=dict(
        in_channels=[32, 32, 32, 32],
        channels=32,
        num_classes=150,
        norm_cfg=norm_cfg,
        feature_strides=[4, 8, 16, 16],
    ),
)
