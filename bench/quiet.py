"""Known third-party notices silenced in every spikebench entry point, so a terminal shows progress bars,
tables and where files went. Only other packages' deprecation/future notices are dropped; spikebench's own
warnings (``bench.errors.warn``, Python warnings raised by our modules) stay visible."""

from __future__ import annotations

import warnings

THIRD_PARTY = r"(mmcv|mmdet|mmengine|mmseg|pkg_resources|setuptools|timm|torchvision|pycocotools)(\.|$)"
MESSAGES = (
    r".*pkg_resources is deprecated.*",  # mmengine / mmcv import pkg_resources (setuptools < 81 pinned)
    r".*``build_loss`` would be deprecated.*",  # mmseg 1.2 builds its losses the old way
    r".*(avg_non_ignore|reduction_override).*",  # mmseg CrossEntropyLoss notice on every build
)


def silence_third_party() -> None:
    """Ignore deprecation and future notices that installed packages (OpenMMLab, timm, torchvision, ...) raise
    from their own modules, and their known notices raised on behalf of a caller."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    for message in MESSAGES:
        warnings.filterwarnings("ignore", message=message)
