"""OpenMMLab glue shared by the dense tasks; importing it registers modules in mmdet's and mmseg's MODELS."""

from tasks.openmm import necks  # noqa: F401  (registers SimpleFPN and LN2d)
