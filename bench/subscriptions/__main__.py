"""``python -m bench.subscriptions``: see the package's docstring."""

import sys

from bench.subscriptions.cli import main

sys.exit(main())
