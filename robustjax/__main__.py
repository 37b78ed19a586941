"""``python -m robustjax`` runs the command line."""

import sys

from robustjax.cli import main

sys.exit(main())
