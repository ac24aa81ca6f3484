"""One writer per output directory: a `filelock` lock file inside it, naming its holder.

The lock is an OS lock (``flock``), so the kernel drops it when its holder dies: a lock file left by
a killed process is stale, and the next writer takes it over (and rewrites the holder line). A
writer that finishes removes the lock file, so a finished directory holds only what it wrote.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from synth.errors import SynthError

LOCK_NAME = ".synth.lock"


def holder_line() -> str:
    """Who holds the lock: this process id and its command line."""
    return f"process {os.getpid()} ({' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200]})"


def _write_holder(descriptor: int) -> None:
    os.ftruncate(descriptor, 0)
    os.write(descriptor, holder_line().encode())


def read_holder(directory: Path) -> str:
    """The holder line of ``directory``'s lock, or ``another process`` when it cannot be read."""
    try:
        return (Path(directory) / LOCK_NAME).read_text().strip() or "another process"
    except OSError:
        return "another process"


def entries(directory: Path) -> list[Path]:
    """The entries of ``directory`` other than its lock file."""
    return [path for path in Path(directory).iterdir() if path.name != LOCK_NAME]


def create_directory(directory: Path) -> bool:
    """Create ``directory`` (and its parents); True when it did not exist before."""
    if directory.is_dir():
        return False
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        if not directory.is_dir():
            raise SynthError(f"--out {directory} exists and is not a directory") from None
        return False
    except OSError as error:
        raise SynthError(f"cannot create output directory {directory}: {error.strerror}") from None
    return True


@contextmanager
def output_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s writer lock (creating the directory); another writer is an error naming it.

    A directory this call created and that is still empty at the end is removed again.
    """
    directory = Path(directory)
    created = create_directory(directory)
    lock = filelock.FileLock(directory / LOCK_NAME, on_acquired=_write_holder)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise SynthError(f"{directory} is being written by {read_holder(directory)}; wait for it to finish") from None
    except OSError as error:
        _remove_if_empty(directory, created)
        raise SynthError(f"cannot write to output directory {directory}: {error.strerror}") from None
    try:
        yield
    finally:
        (directory / LOCK_NAME).unlink(missing_ok=True)  # while still held: nobody can take it in between
        lock.release()
        _remove_if_empty(directory, created)


def _remove_if_empty(directory: Path, created: bool) -> None:
    if created and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
