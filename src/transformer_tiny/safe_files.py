"""Reading files that may be hostile: regular files only (no symbolic links, FIFOs or devices),
bounded reads, and safetensors files checked against the tensors they must hold before their
payload is read. Every failure is a one-line :class:`CheckpointError`."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

MAX_HEADER_BYTES = 1 << 20  # the safetensors header: names, shapes, offsets
_CHUNK = 1 << 20

# A tensor's expected (shape, safetensors dtype); shape None: any 1-D shape.
Expected = dict[str, tuple[tuple[int, ...] | None, str]]


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, corrupted, inconsistent or hostile."""


# ----------------------------------------------------------------------------- files
def open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of ``path``, which must be a regular file and not a symbolic link
    (a FIFO or device is refused without blocking)."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(path, flags)
    except OSError as e:
        if path.is_symlink():
            raise CheckpointError(f"{what} {path} is a symbolic link; not followed") from None
        raise CheckpointError(f"cannot read {what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise CheckpointError(f"{what} {path} is not a regular file")
    return fd


def read_exactly(fd: int, n: int, path: Path, what: str) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, min(_CHUNK, n - len(data)))
        if not chunk:
            raise CheckpointError(f"{what} {path} ended early (truncated)")
        data += chunk
    return bytes(data)


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of regular file ``path`` (no symbolic links), refused past ``limit`` bytes."""
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CheckpointError(f"{what} {path} is {size:,} bytes; at most {limit:,} are read")
        return read_exactly(fd, size, path, what)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- safetensors
def check_header(header: Any, expected: Expected, optional: set[str], where: str) -> int:
    """Compare a safetensors header with ``expected``; returns the payload's size in bytes."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{where} have no valid safetensors header")
    header.pop("__metadata__", None)
    missing = sorted(set(expected) - set(header) - optional)
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        key = (missing or extra)[0]
        problem = "missing tensor" if missing else "unexpected tensor"
        raise CheckpointError(f"{where} do not fit the config: {problem} {key!r}")
    end = 0
    for key, entry in header.items():
        shape, dtype = expected[key]
        if not isinstance(entry, dict) or entry.get("dtype") != dtype:
            got = entry.get("dtype") if isinstance(entry, dict) else None
            raise CheckpointError(f"{where}: tensor {key!r} is {got}, expected {dtype}")
        got_shape, offsets = entry.get("shape"), entry.get("data_offsets")
        ok = isinstance(got_shape, list) and all(type(n) is int and n >= 0 for n in got_shape)
        if not ok or (shape is not None and tuple(got_shape) != shape) or \
                (shape is None and len(got_shape) != 1):
            raise CheckpointError(f"{where} do not fit the config: tensor {key!r} has shape "
                                  f"{got_shape}, the config implies "
                                  f"{list(shape) if shape is not None else '1-D'}")
        width = {"F32": 4, "U8": 1}[dtype] * math.prod(got_shape)
        if not (isinstance(offsets, list) and len(offsets) == 2 and
                all(type(n) is int for n in offsets) and offsets[1] - offsets[0] == width):
            raise CheckpointError(f"{where}: tensor {key!r} has bad data offsets")
        end = max(end, offsets[1])
    return end


def read_safetensors(path: Path, what: str, expected: Expected, optional: set[str],
                     sha256: str | None, named_by: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, checked in this order: a regular file, a header that matches
    ``expected`` (``optional`` names may be absent), a size that matches the header, the
    ``sha256`` that ``named_by`` records (the payload is hashed in chunks), finite values."""
    where = f"{what} {path}"
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        head = read_exactly(fd, 8, path, what) if size >= 8 else b""
        n = struct.unpack("<Q", head)[0] if head else -1
        if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{where} are truncated or not a safetensors file")
        header_bytes = read_exactly(fd, n, path, what)
        try:
            header = json.loads(header_bytes)
        except (ValueError, RecursionError):
            raise CheckpointError(f"{where} are unreadable: bad safetensors header") from None
        payload = check_header(header, expected, set(optional), where)
        if size != 8 + n + payload:
            raise CheckpointError(f"{where} are {size:,} bytes; the header implies "
                                  f"{8 + n + payload:,}")
        digest, blob = hashlib.sha256(head + header_bytes), bytearray(head + header_bytes)
        while len(blob) < size:
            chunk = read_exactly(fd, min(_CHUNK, size - len(blob)), path, what)
            digest.update(chunk)
            blob += chunk
    finally:
        os.close(fd)
    if digest.hexdigest() != sha256:
        raise CheckpointError(f"{where} do not match {named_by} (corrupted or replaced)")
    try:
        tensors = load_safetensors(bytes(blob))
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{where} are unreadable: {e}") from None
    if all(dtype == "F32" for _, dtype in expected.values()) and \
            np.isfinite(np.frombuffer(blob, np.float32, offset=8 + n)).all():
        return tensors  # all finite, checked in one pass over the payload
    for k, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{where}: tensor {k!r} holds NaN or infinite values")
    return tensors
