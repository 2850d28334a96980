"""Distillation for segmentation: the shared ``FeatureDistillHook`` (``tasks.openmm.distill``) on the maps
a segmentor's head reads, and plain feature KD beside QFD.

- Semantic FPN: every FPN level (their width is the config's, so any teacher backbone fits);
- UPerNet (no neck): the backbone's maps (a teacher of the same widths: the full-precision student).
Loss = segmentation loss + lambda x mean over levels of MSE(student map, Q_b(teacher map)) (QFD, b =
``teacher_bits``); ``kd-feature`` uses the teacher's map unquantized.
"""

from __future__ import annotations

from torch import nn

from tasks.segmentation.config import SegConfig


def distill_hook(cfg: SegConfig, num_maps: int, teacher: str | None = None) -> dict | None:
    """The custom hook entry of ``cfg.distill`` (None for ``kind='none'``); ``teacher`` replaces
    ``cfg.distill.teacher`` (a teacher given as fields, once trained)."""
    d = cfg.distill
    if d.kind == "none":
        return None
    import tasks.openmm.distill  # noqa: F401  (registers FeatureDistillHook)

    point, levels = ("neck", max(4, num_maps)) if cfg.segmentor == "semfpn" else ("backbone", num_maps)
    return dict(
        type="FeatureDistillHook" if d.kind == "qfd" else "FeatureKDHook",
        teacher=teacher or d.teacher,
        teacher_checkpoint=d.teacher_checkpoint,
        point=point,
        indices=tuple(range(levels)),
        teacher_bits=d.teacher_bits,
        weight=d.weight,
    )


def _register() -> None:
    from mmengine.registry import HOOKS

    from tasks.openmm.distill import FeatureDistillHook

    class FeatureKDHook(FeatureDistillHook):
        """Feature KD: MSE to the teacher's full-precision maps (QFD's loss without the quantizer)."""

        def before_run(self, runner) -> None:
            super().before_run(runner)
            for loss in self.losses:
                loss.quantizer = nn.Identity()

    HOOKS.register_module(name="FeatureKDHook", module=FeatureKDHook, force=True)
    from mmseg.registry import HOOKS as SEG_HOOKS

    SEG_HOOKS.register_module(name="FeatureKDHook", module=FeatureKDHook, force=True)


_register()
