# Semantic FPN on ADE20K as mmseg's config (FPN 256 -> FPNHead 128, 512x512 crops, 160k iterations), with
# the optimiser of the spiking papers' official configs (SDT-V2/QSD: AdamW lr 1e-3, wd 0.005, head lr x2,
# 1500 warm-up iterations, poly decay). The backbone, channels and strides are filled per run.
_base_ = ["mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py"]
custom_imports = dict(imports=["tasks.openmm"], allow_failed_imports=False)

model = dict(backbone=dict(_delete_=True, type="SpikebenchBackbone", model_name="qsd_tiny"))
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-3, betas=(0.9, 0.999), weight_decay=0.005),
    paramwise_cfg=dict(custom_keys={"head": dict(lr_mult=2.0)}),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type="PolyLR", eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
