"""`python scripts/train.py --help`: see transformer_tiny.cli.train_main."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.cli import run_cli, train_main

if __name__ == "__main__":
    sys.exit(run_cli(train_main))
