"""A context manager base for monitors that attach forward hooks and remove them on exit."""

from __future__ import annotations

from torch.utils.hooks import RemovableHandle


class HookSet:
    """Holds hook handles; subclasses register in ``__enter__`` through ``_keep``."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def _keep(self, handle: RemovableHandle) -> None:
        self._handles.append(handle)

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
