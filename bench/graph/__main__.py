"""``python -m bench.graph``: see the package's docstring."""

import sys

from bench.graph.cli import main

sys.exit(main())
