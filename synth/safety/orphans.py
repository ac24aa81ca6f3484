"""Worker processes that die with their parent: no shard is written after `synth gen` is gone.

On Linux the kernel kills a worker when its parent dies (``PR_SET_PDEATHSIG``); everywhere, a worker
checks before each shard that its parent is still the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_parent: int | None = None  # the process that started this worker; None outside a worker


def die_with_parent(parent: int) -> None:
    """Worker initializer: be killed when ``parent`` dies, and exit now if it is already gone."""
    global _parent
    _parent = parent
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not parent_alive():
        os._exit(1)


def parent_alive() -> bool:
    """False in a worker whose parent has died (it was re-parented); True outside workers."""
    return _parent is None or os.getppid() == _parent
