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

MAX_HEADER_BYTES = 1 << 20  # the safetensors header: names, shapes, offsets
_CHUNK = 1 << 20

_DTYPES = {"F32": np.float32, "U8": np.uint8}  # the safetensors dtypes a checkpoint may hold
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


def _read_into(fd: int, view: memoryview, digest: Any, path: Path, what: str) -> None:
    """Fill ``view`` from ``fd`` in chunks, feeding each chunk to ``digest``."""
    done = 0
    with open(fd, "rb", buffering=0, closefd=False) as f:
        while done < len(view):
            got = f.readinto(view[done:done + _CHUNK])
            if not got:
                raise CheckpointError(f"{what} {path} ended early (truncated)")
            digest.update(view[done:done + got])
            done += got


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
    """Compare a safetensors header with ``expected``; returns the payload's size in bytes.
    The free-form ``__metadata__`` entry is removed from ``header``: the rest are tensors."""
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
                                  f"{got_shape}, expected "
                                  f"{list(shape) if shape is not None else '1-D'}")
        width = np.dtype(_DTYPES[dtype]).itemsize * math.prod(got_shape)
        if not (isinstance(offsets, list) and len(offsets) == 2 and
                all(type(n) is int for n in offsets) and offsets[0] >= 0 and
                offsets[1] - offsets[0] == width):
            raise CheckpointError(f"{where}: tensor {key!r} has bad data offsets")
    for key, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
        if entry["data_offsets"][0] != end:  # the tensors must tile the payload, in some order
            raise CheckpointError(f"{where}: tensor {key!r} has bad data offsets")
        end = entry["data_offsets"][1]
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
        blob = bytearray(size)  # the whole file, read once into place and hashed as it comes
        blob[:8 + n] = head + header_bytes
        digest = hashlib.sha256(head + header_bytes)
        _read_into(fd, memoryview(blob)[8 + n:], digest, path, what)
    finally:
        os.close(fd)
    if sha256 is None:
        raise CheckpointError(f"{named_by} records no SHA-256 for {where}")
    if digest.hexdigest() != sha256:
        raise CheckpointError(f"{where} do not match {named_by} (corrupted or replaced)")
    return _tensors(blob, 8 + n, header, where)


def _tensors(blob: bytearray, start: int, header: dict[str, Any], where: str
             ) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file whose header :func:`check_header` accepted, as views of
    its bytes ``blob`` (payload from ``start``); refused if a float tensor is not finite."""
    # one pass over the payload when every tensor is float32; else a check per tensor below
    all_f32_finite = all(entry["dtype"] == "F32" for entry in header.values()) and \
        bool(np.isfinite(np.frombuffer(blob, np.float32, offset=start)).all())
    tensors = {}
    for key, entry in header.items():
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        offset, end = (start + o for o in entry["data_offsets"])
        values = np.frombuffer(blob, dtype, (end - offset) // dtype.itemsize, offset)
        if not all_f32_finite and dtype.kind == "f" and not np.isfinite(values).all():
            raise CheckpointError(f"{where}: tensor {key!r} holds NaN or infinite values")
        tensors[key] = torch.from_numpy(values).view(entry["shape"])
    return tensors
