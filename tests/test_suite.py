"""The test suite's own setup (conftest.py), run on a copy of it in a new pytest process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

FAILING = 'def test_lone_surrogate():\n    assert "\\ud800x" == "a"\n'


@pytest.mark.slow
def test_a_failure_holding_a_lone_surrogate_is_reported_by_parallel_workers(tmp_path):
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(Path(__file__).with_name(name), tmp_path / name)
    (tmp_path / "test_fails.py").write_text(FAILING)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path}"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # tests failed (an internal error exits 3)
    assert "INTERNALERROR" not in out and "1 failed" in out
    assert "\\ud800x" in out  # the escaped surrogate, in the failure's report
