"""`python scripts/plot.py --help`: see transformer_tiny.cli.plot."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.cli.errors import run_cli
from transformer_tiny.cli.plot import plot_main

if __name__ == "__main__":
    sys.exit(run_cli(plot_main))
