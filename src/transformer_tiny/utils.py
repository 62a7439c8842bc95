"""Small helpers: seeding, devices and threads, atomic file writes, the memory free."""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other name (``cpu``, ``cuda:1``) or
    ``torch.device`` as torch reads it. A device torch does not know, or a CUDA device without
    CUDA, is a ``ValueError``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: torch knows no device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for, but no CUDA device is available")
    return device


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def set_threads(n: int) -> int:
    """Use ``n`` intra-op threads (0 = one per available core); returns the number set."""
    n = n if n > 0 else available_cores()
    torch.set_num_threads(n)
    return n


TEMP_SUFFIX = ".transformer-tiny.tmp"  # no user file is named like this: safe to clean up


def file_mode() -> int:
    """The permissions of a new file under the current umask (``0o644`` for umask ``022``)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask: from ``/proc`` where Linux shows it, since the portable way (set it,
    then restore it) briefly leaves it at 0 for other threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, fsync it, then rename into place.

    A crash or kill at any moment leaves either the old file or the new one, never a torn one.
    The file gets the permissions the umask gives a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def text_bytes(text: str) -> bytes:
    """``text`` as UTF-8, a lone surrogate (from a file name that is not UTF-8) as its
    ``\\udcff`` escape: writing a text never fails after other files were written."""
    return text.encode("utf-8", "backslashreplace")


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text_bytes(text))


def json_text(obj: Any, indent: int | None = None) -> str:
    """``obj`` as JSON, non-ASCII characters as they are, unless a string holds a lone
    surrogate (a file name that is not UTF-8), which UTF-8 cannot encode: then every non-ASCII
    character is escaped (``\\u``), which reads back the same."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, indent=indent)
    return text


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, indent=2) + "\n")


def mem_available(meminfo: str) -> int | None:
    """Bytes of the ``MemAvailable:`` line of ``/proc/meminfo`` text (None without one)."""
    for line in meminfo.splitlines():
        fields = line.split()
        if fields[:1] == ["MemAvailable:"] and len(fields) >= 2 and fields[1].isdigit():
            return int(fields[1]) * 1024  # the file counts kB
    return None


def free_memory(meminfo: str | Path = "/proc/meminfo") -> int | None:
    """Bytes of memory available to new allocations without swapping: Linux's MemAvailable
    (free memory plus the cache it can reclaim, from the file ``meminfo``), else the free pages
    the OS reports (which leave the cache out), else None where the OS does not say."""
    try:
        with open(meminfo, encoding="ascii") as f:
            available = mem_available(f.read())
        if available is not None:
            return available
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
