"""Writing a set of files so that a failure leaves the previous set untouched.

Every file is first written to a temporary name in its own folder; only when all are written are they renamed
over the old ones (a rename within a folder is atomic on POSIX). A crash while writing leaves the old files and,
at worst, a temporary file behind, never a partial list.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

Writer = Callable[[Path], object]


def write_all_or_nothing(writers: dict[Path, Writer]) -> None:
    """Call each writer with a temporary path, then move all of them into place."""
    temporary: dict[Path, Path] = {}
    try:
        for target, write in writers.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            temporary[target] = scratch
            write(scratch)
    except BaseException:
        for scratch in temporary.values():
            with contextlib.suppress(FileNotFoundError):
                scratch.unlink()
        raise
    for target, scratch in temporary.items():
        os.replace(scratch, target)
