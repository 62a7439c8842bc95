"""``python -m transformer_tiny COMMAND``: the same as the ``transformer-tiny`` console command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
