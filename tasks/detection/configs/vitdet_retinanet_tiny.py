# RetinaNet on ViTDet's simple feature pyramid (P3-P7 from one backbone map), for CPU runs.
_base_ = ["./retinanet_tiny.py"]

model = dict(neck=dict(_delete_=True, type="SimpleFPN", out_channels=32, num_outs=5))
