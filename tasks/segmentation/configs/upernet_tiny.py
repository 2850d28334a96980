# Tiny UPerNet for the CPU: the paper config with BN, narrow heads, small crops, a short schedule.
_base_ = ["./upernet_paper.py"]

norm_cfg = dict(type="BN", requires_grad=True)
crop_size = (64, 64)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(channels=32, pool_scales=(1, 2, 3), norm_cfg=norm_cfg, dropout_ratio=0.0),
    auxiliary_head=dict(channels=16, norm_cfg=norm_cfg, dropout_ratio=0.0),
)
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=1.0, begin=0, end=60, by_epoch=False)]
train_cfg = dict(max_iters=60, val_interval=60)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(256, 64), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(256, 64), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False, dataset=dict(pipeline=train_pipeline)
)
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
