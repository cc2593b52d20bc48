"""What a benchmark's run happens in: a temporary directory, usually an embedded PostgreSQL in
it, the registry of the processes it starts, and an event loop; all stopped at the end, Ctrl-C
and SIGTERM included."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.graph.servers import Processes

if TYPE_CHECKING:
    from gateway.tools.embedded import EmbeddedPostgres

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop, as the servers run, for the in-process measurements (when installed)."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@dataclass(frozen=True)
class Harness:
    procs: Processes
    tmp: Path
    pg: EmbeddedPostgres | None  # None: the run uses an external server

    @property
    def embedded(self) -> EmbeddedPostgres:
        if self.pg is None:
            raise RuntimeError("this run has no embedded PostgreSQL")
        return self.pg

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """``main`` to completion on a fresh event loop (uvloop when installed)."""
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(main)


def run_harnessed(
    prefix: str,
    body: Callable[[Harness], int],
    *,
    stopping: str,
    embedded: bool = True,
    before_pg_stop: Callable[[EmbeddedPostgres], None] | None = None,
) -> int:
    """``body``'s exit status, run in a :class:`Harness` (its directory named ``prefix``…);
    130 when interrupted, after saying that it is stopping ``stopping``. The processes are
    stopped first, then ``before_pg_stop`` runs, then the embedded PostgreSQL stops."""
    from gateway.tools.embedded import EmbeddedPostgres

    # Ctrl-C and SIGTERM end the run at once, wherever it is (asyncio's own SIGINT handler
    # would only cancel the task at its next await, after a blocking call such as a wrk run):
    # the finally blocks stop what was started.
    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, terminate)
    signal.signal(signal.SIGTERM, terminate)
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        pg = EmbeddedPostgres(Path(tmp)).start() if embedded else None
        try:
            return body(Harness(procs, Path(tmp), pg))
        except KeyboardInterrupt:
            print(f"\ninterrupted: stopping {stopping}", file=sys.stderr)
            return 130
        finally:
            procs.stop_all()
            if pg is not None:
                if before_pg_stop is not None:
                    before_pg_stop(pg)
                pg.stop()
