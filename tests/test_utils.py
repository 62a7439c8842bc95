"""Atomic file writes: the target holds the new content or the old one, and no temporary file is
left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transformer_tiny.utils import atomic_write_bytes


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_write_bytes_replaces_content(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    atomic_write_bytes(target, b"second, longer content")
    assert target.read_bytes() == b"second, longer content"
    atomic_write_bytes(target, b"")
    assert target.read_bytes() == b""
    assert leftovers(target.parent) == []
    assert sorted(os.listdir(target.parent)) == ["file.bin"]


def test_atomic_write_bytes_failure_keeps_old_file(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []
