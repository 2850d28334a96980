"""The layer both OpenMMLab tasks share: backbone adapter, hooks, config loader, runner, measurement,
necks, spiking and quantized neck/head options, and the torchrun wrapper.

Importing this package registers ``SpikebenchBackbone``, the hooks, the ``SpikebenchModel`` builder, the
DDP wrapper (``SpikebenchDDP``) and the necks (``SimpleFPN``, ``LN2d``) in mmengine's, mmdet's and mmseg's
registries (configs name them by ``type``). Only ``tasks/`` imports the OpenMMLab stack.
"""

from tasks.api import require_openmmlab

require_openmmlab()  # a core-only setup stops here with one line naming `scripts/setup.sh --dense`

from tasks.openmm import backbone, history, hooks, model, necks, parallel  # noqa: E402, F401  (registers modules)
