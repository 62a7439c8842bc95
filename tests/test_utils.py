"""Atomic file writes: the target holds the new content or the old one, and no temporary file is
left behind."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from transformer_tiny.extras import MissingExtraError, require
from transformer_tiny.utils import atomic_write_bytes, file_mode, free_memory, mem_available


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


@pytest.mark.skipif("Umask:" not in (Path("/proc/self/status").read_text()
                                    if Path("/proc/self/status").exists() else ""),
                    reason="the OS does not show the umask in /proc")
def test_file_mode_reads_the_umask_without_changing_it(monkeypatch):
    """Setting the umask to read it would leave it at 0 for a moment, for every thread."""
    calls = []
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or 0)
    with open("/proc/self/status") as f:
        old = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    assert file_mode() == 0o666 & ~old and calls == []


def test_require_imports_the_module_or_names_the_extra(monkeypatch):
    assert require("json", "none", "x") is json
    monkeypatch.setitem(sys.modules, "json", None)
    with pytest.raises(MissingExtraError, match=r"^reading needs the js extra: pip install -e "
                                                r"'\.\[js\]'$"):
        require("json", "js", "reading")


def test_free_memory_counts_the_cache_the_system_can_reclaim(tmp_path, monkeypatch):
    meminfo = "MemTotal:  24000000 kB\nMemFree:  11000000 kB\nMemAvailable:  22000000 kB\n"
    assert mem_available(meminfo) == 22_000_000 * 1024  # not MemFree
    assert mem_available("MemFree: 5 kB\n") is None
    fake = tmp_path / "meminfo"
    fake.write_text(meminfo)
    assert free_memory(fake) == 22_000_000 * 1024
    # Without the line, or without the file, the free pages the OS reports.
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(os, "sysconf", pages.__getitem__)
    fake.write_text("MemFree:  11000000 kB\n")
    for where in (fake, tmp_path / "missing"):
        assert free_memory(where) == 1000 * 4096
    monkeypatch.undo()
    with open("/proc/meminfo", encoding="ascii") as f:  # this machine's own file, read
        assert free_memory() == pytest.approx(mem_available(f.read()),
                                                           rel=0.25)
