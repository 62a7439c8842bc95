"""`python scripts/infer.py --help`: see transformer_tiny.cli.infer_main."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transformer_tiny.cli import infer_main, run_cli

if __name__ == "__main__":
    sys.exit(run_cli(infer_main))
