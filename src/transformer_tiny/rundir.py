"""A training run's folder: whether a run may write there, and one run at a time.

A new run goes into a folder that is missing, empty, or already a run of this package (it holds
a ``best.json`` or ``last.json`` checkpoint of ours, or the lock file that every run creates
first); a folder holding anything else is refused unless the user says ``overwrite``. Even then
a run replaces only the files it writes itself (checkpoints, ``metrics.jsonl``, ``steps.csv``,
the TensorBoard event files in ``tensorboard/``)
and removes only the data files its own earlier checkpoints named, and temporary files named
with :data:`~transformer_tiny.utils.TEMP_SUFFIX`.

While a run trains, its main process holds an exclusive lock on ``.transformer-tiny.lock`` in
the folder; a second run into the same folder is refused with the first one's pid. The lock goes
with the process, however it ends.

The exports follow the same rule (:func:`claim_output_dir`): a folder that holds files and is
not an earlier output of theirs is refused, and in one that is, they replace only their own files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from .checkpoint import is_checkpoint
from .utils import TEMP_SUFFIX, file_mode

LOCK_FILE = ".transformer-tiny.lock"
CHECKPOINTS = ("best.json", "last.json")

try:
    import fcntl
except ImportError:  # not a POSIX system: no lock
    fcntl = None


class RunDirError(ValueError):
    """The run folder cannot be used (not a run of ours, or in use by another run)."""


def is_run(out: Path) -> bool:
    """Whether ``out`` is a run folder of this package: a run has locked it, or it holds one of
    our checkpoints."""
    return (out / LOCK_FILE).is_file() or any(is_checkpoint(out / n) for n in CHECKPOINTS)


def claim_run_dir(out: Path, overwrite: bool = False) -> RunLock:
    """Lock ``out`` for a run; refuse a folder that holds files and is not a run of this
    package (unless ``overwrite``), before writing anything in it."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory")
    if not overwrite and out.is_dir() and not is_run(out):
        foreign = sorted(e.name for e in out.iterdir() if not e.name.endswith(TEMP_SUFFIX))
        if foreign:
            raise RunDirError(f"--out {out} holds files that are not a training run "
                              f"({foreign[0]}); choose another folder, or pass --overwrite "
                              "(overwrite=True in Python) to train there anyway")
    return RunLock(out)


class RunLock:
    """An exclusive lock on the run folder ``out`` for as long as it is held."""

    def __init__(self, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, file_mode())
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(self.fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(self.fd)
            raise RunDirError(f"--out {out} is in use by another training run (pid {pid})"
                              ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        for leftover in out.glob(f".*{TEMP_SUFFIX}"):  # from a run killed in the middle of a write
            leftover.unlink(missing_ok=True)

    def release(self) -> None:
        """Let another run use the folder."""
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the lock
            self.fd = -1


def claim_output_dir(out: Path, owned: Mapping[str, Callable[[Path], bool]], what: str) -> None:
    """Refuse (``RunDirError``) to write the files named in ``owned`` into ``out`` unless ``out``
    is missing, empty, or holds an earlier output of the same kind (``what``): at least one of
    those files, each of them recognised by its ``owned`` check as written by this package.
    Other files in such a folder are left alone, as in a run folder."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out} exists and is not a directory")
    if not out.is_dir():
        return
    present = [name for name in owned if os.path.lexists(out / name)]
    foreign = [name for name in present if not owned[name](out / name)]
    if foreign and len(foreign) < len(present):  # beside files of ours: perhaps one of ours
        raise RunDirError(f"{out} holds {foreign[0]}, which is not from {what}, or changed since "
                          "it was written (an edit, or a write stopped midway); choose another "
                          "folder, or remove that file")
    if foreign:
        raise RunDirError(f"{out} holds {foreign[0]}, which is not from {what}; choose "
                          "another folder")
    others = sorted(e.name for e in out.iterdir() if not e.name.endswith(TEMP_SUFFIX))
    if others and not present:
        raise RunDirError(f"{out} holds files that are not {what} ({others[0]}); choose "
                          "another folder")
