"""``python -m labhelpers``: the command line (labhelpers/cli.py)."""

import sys

from .cli import main

sys.exit(main())
