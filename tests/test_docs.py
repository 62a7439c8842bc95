"""The documentation runs as written: every command and Python block of README.md and
docs/usage.md is run (with a tiny model, so that it takes seconds) or named below with the reason
it is not, and docs/results.md is what benchmarks/report.py makes of the results JSON."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

DOCS = ["README.md", "docs/usage.md"]
NOT_RUN = {  # how a command starts: why this test does not run it
    "make demo": "the quickstart commands, which this test runs one by one",
    "make test": "what CI runs: this test suite",
    "make web": "starts a web server; tests/test_web.py drives the page in Chromium",
    "python -m venv": "installation: `make install` does it, and CI runs that",
    "pip install": "installation: `make install` installs requirements-dev.txt, the extras too",
    "tensorboard --logdir": "starts a web server; the event files are tested in test_logs.py",
}
# Appended to a command line (the last flag wins): a tiny model, little data, one epoch.
TINY_TRAIN = ("--d-model 16 --n-heads 2 --n-dec-layers 1 --d-ff 16 --max-len 8 --epochs 1 "
              "--train-samples 256 --val-samples 16 --test-samples 16 --progress false")
CHEAPER = {"scripts/train.py": TINY_TRAIN, "--lengths": "--samples 4",
           "scripts/export.py": "--verify 8", "scripts/plot.py": "--samples 4"}


def python_blocks(doc: str) -> list[str]:
    """The ```python blocks of ``doc``."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def command_lines(doc: str) -> list[str]:
    """The commands of the ```bash blocks of ``doc``, comments removed, ``a && b`` split."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines += [part.strip() for part in line.split("&&")]
    return lines


def skipped(command: str) -> bool:
    return any(command.startswith(prefix) for prefix in NOT_RUN) or command.startswith("source ")


def cheap(command: str) -> str:
    """``command`` with the flags that make it take seconds appended."""
    extra = [flags for key, flags in CHEAPER.items() if key in command and flags]
    return " ".join([command, *extra])


def test_every_documented_command_is_run_or_explained():
    for doc in DOCS:
        commands = command_lines(doc)
        assert commands, doc
        for command in commands:
            words = command.split()
            known = {"python", "transformer-tiny", "torchrun", "printf"}
            assert python_blocks(doc) or doc != "README.md"
            assert skipped(command) or words[0] in known, f"{doc}: no rule for {command!r}"


def test_results_page_is_generated_from_the_json():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import report  # what `python benchmarks/report.py --check` compares

    existing = report.OUT.read_text(encoding="utf-8")
    assert report.render(existing, report.RESULTS) == existing, \
        "docs/results.md is out of date with the results JSON: run python benchmarks/report.py"


@pytest.mark.slow
def test_documented_commands_run(tmp_path):
    """README.md, then docs/usage.md, in order, in one folder (later commands use the runs of
    earlier ones, as a reader's would), each must exit with 0; then the Python blocks of both."""
    for name in ("scripts", "src", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for doc in DOCS:
        for command in command_lines(doc):
            if skipped(command):
                continue
            proc = subprocess.run(["bash", "-c", cheap(command)], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{doc}: {cheap(command)}\n{proc.stderr[-2000:]}"
            assert "Traceback" not in proc.stderr, proc.stderr
    for doc in DOCS:
        for block in python_blocks(doc):
            proc = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{doc}:\n{block}\n{proc.stderr[-2000:]}"
