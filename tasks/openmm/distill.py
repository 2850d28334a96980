"""Feature distillation for any mmdet/mmseg model from a frozen full-precision teacher (QFD's dense protocol).

``FeatureDistillHook`` builds the teacher from its config (a run directory's ``mm_config.py`` or a config
file) and checkpoint, frozen in eval mode and kept out of the student's state dict. At every training
iteration it captures the student's and the teacher's outputs of the module named ``point`` (detection:
``neck``, whose outputs are the pyramid levels; ``indices`` pick levels, 0 = the first), quantizes each
teacher map to ``teacher_bits`` with bench's uniform quantizer (``bench.nn.distill.QFDLoss``, the one
classification uses: bounds calibrated on the first batch, then fixed) and adds
``loss_distill = weight * mean over levels of MSE(student, Q(teacher))`` to the model's loss dict (QFD,
Zhu et al. AAAI 2023: P3, 8 bits; lambda = 0 leaves training unchanged). The quantizer bounds are saved in
every checkpoint and restored on resume.

Student and teacher maps are paired by stride, never by position: student level i is matched with the
teacher map of the same spatial size on the same input (among several such teacher maps, the one of the same
rank, else the deepest). A student level with no teacher map of its stride, or of another width, stops the run
at its first iteration, before any update, with one line naming both shapes; nothing is resampled and the MSE
never broadcasts.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS as ENGINE_HOOKS
from mmengine.runner import load_checkpoint
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.nn.distill import QFDLoss, check_same_shape
from tasks.openmm.hooks import unwrap


def teacher_files(teacher: str, checkpoint: str | None) -> tuple[Path, Path]:
    """The teacher's config file and checkpoint (of a run directory: ``mm_config.py``, newest checkpoint)."""
    path = Path(teacher)
    config = path / "mm_config.py" if path.is_dir() else path
    if not config.is_file():
        raise ConfigError(
            f"distill.teacher={teacher!r}: no config found (allowed: a run directory or a config)"
        )
    if checkpoint is None:
        from tasks.openmm.run import latest_checkpoint

        found = latest_checkpoint(path / "mm") if path.is_dir() else None
        if found is None:
            raise ConfigError(f"distill.teacher={teacher!r}: no checkpoint; set distill.teacher_checkpoint")
        checkpoint = str(found)
    if not Path(checkpoint).is_file():
        raise ConfigError(f"distill.teacher_checkpoint={checkpoint!r}: file not found")
    return config, Path(checkpoint)


def build_teacher(teacher: str, checkpoint: str | None) -> nn.Module:
    """The frozen teacher model (eval mode, no gradients) from its config and checkpoint."""
    from mmengine.registry import MODELS, DefaultScope

    config, ckpt = teacher_files(teacher, checkpoint)
    cfg = Config.fromfile(str(config))
    scope = cfg.get("default_scope", "mmdet")
    with torch.random.fork_rng():  # building the teacher must not shift the student's random stream
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(cfg.model)
    load_checkpoint(model, str(ckpt), map_location="cpu", strict=True, logger="silent")
    return model.eval().requires_grad_(False)


class Capture:
    """The output of ``model.<point>`` at its last forward."""

    def __init__(self, model: nn.Module, point: str) -> None:
        try:
            module = model.get_submodule(point)
        except AttributeError:
            raise ConfigError(f"distill point={point!r}: the model has no such module") from None
        self.value: tuple[Tensor, ...] | None = None
        self.handle = module.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple, out: object) -> None:
        self.value = tuple(out) if isinstance(out, (tuple, list)) else (out,)


class FeatureDistillHook(Hook):
    """Adds ``loss_distill`` (QFD feature MSE to a quantized full-precision teacher) to the training loss."""

    priority = "NORMAL"

    def __init__(
        self,
        teacher: str,
        teacher_checkpoint: str | None = None,
        point: str = "neck",
        indices: tuple[int, ...] = (0,),
        teacher_bits: int = 8,
        weight: float = 0.5,
    ) -> None:
        self.teacher_spec = (teacher, teacher_checkpoint)
        self.point = point
        self.indices = tuple(indices)
        self.teacher_bits = teacher_bits
        self.weight = float(weight)
        self.losses: nn.ModuleList | None = None
        self.teacher: list[nn.Module] = []  # a list: never a submodule of anything saved
        self.teacher_time = 0.0
        self._pending: dict | None = None
        self.pairs: list[tuple[int, int]] = []

    def _pair(self, inputs: Tensor, s_feats: tuple, t_feats: tuple) -> list[tuple[int, int]]:
        """(student level, teacher level) of equal stride for every distilled level (see module docstring)."""
        if max(self.indices) >= len(s_feats):
            raise ConfigError(
                f"distill levels {self.indices} (0 = first) not allowed: "
                f"{self.point} gives {len(s_feats)} maps"
            )
        self.pairs = [(i, stride_match(inputs, s_feats, t_feats, i)) for i in self.indices]
        for i, j in self.pairs:
            check_same_shape(s_feats[i], t_feats[j], f"distill {self.point} level {i}")
        return self.pairs

    def before_run(self, runner) -> None:
        model = unwrap(runner.model)
        device = next(model.parameters()).device
        teacher = build_teacher(*self.teacher_spec).to(device)
        self.teacher = [teacher]
        student_cap, teacher_cap = Capture(model, self.point), Capture(teacher, self.point)
        self.losses = nn.ModuleList(QFDLoss(1, 1, self.teacher_bits) for _ in self.indices).to(device)
        if self._pending is not None:
            self.losses.load_state_dict(self._pending)
        original = model.loss

        def loss(inputs: Tensor, data_samples: list) -> dict:
            losses = original(inputs, data_samples)
            start = time.perf_counter()
            with torch.no_grad():
                teacher.extract_feat(inputs)
            self.teacher_time += time.perf_counter() - start
            s_feats, t_feats = student_cap.value, teacher_cap.value
            pairs = self.pairs or self._pair(inputs, s_feats, t_feats)
            terms = [self.losses[k](s_feats[i], t_feats[j]) for k, (i, j) in enumerate(pairs)]
            losses["loss_distill"] = self.weight * torch.stack(terms).mean()
            return losses

        model.loss = loss

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.losses is not None:
            checkpoint["distill_state"] = self.losses.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get("distill_state")
        if state is None:
            return
        if self.losses is not None:
            self.losses.load_state_dict(state)
        else:
            self._pending = state


def stride_match(inputs: Tensor, s_feats: tuple, t_feats: tuple, i: int) -> int:
    """Index of the teacher map with the spatial size of student map ``i`` (same input, so same stride)."""
    size = tuple(s_feats[i].shape[-2:])
    same = [j for j, t in enumerate(t_feats) if tuple(t.shape[-2:]) == size]
    if not same:
        stride = inputs.shape[-1] / size[-1]
        shapes = ", ".join(str(list(t.shape)) for t in t_feats)
        raise ConfigError(
            f"distill: student map {i} {list(s_feats[i].shape)} (stride {stride:g}) has no teacher map of "
            f"the same stride; teacher maps: {shapes}; allowed: levels whose stride both networks have"
        )
    rank = sum(tuple(s.shape[-2:]) == size for s in s_feats[:i])
    return same[min(rank, len(same) - 1)]


def _register() -> None:
    from mmdet.registry import HOOKS as DET_HOOKS
    from mmseg.registry import HOOKS as SEG_HOOKS

    for registry in (ENGINE_HOOKS, DET_HOOKS, SEG_HOOKS):
        registry.register_module(name="FeatureDistillHook", module=FeatureDistillHook, force=True)


_register()
