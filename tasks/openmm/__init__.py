"""The layer both OpenMMLab tasks share: backbone adapter, hooks, config loader, runner, measurement.

Importing this package registers ``SpikebenchBackbone``, ``SimpleFPN``/``LN2d`` and the hooks in mmengine's,
mmdet's and mmseg's registries (configs name them by ``type``). Only ``tasks/`` imports the OpenMMLab stack.
"""

from tasks.openmm import backbone, hooks, model, necks  # noqa: F401  (registers modules)
