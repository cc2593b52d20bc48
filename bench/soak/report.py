"""What a soak prints: the requests, the acknowledged writes found (or not) afterwards, the
errors around each restart and how long each took to recover, the worker's RSS over the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bench.soak.load import OK, POST, PROBE, PROBE_S, READ, START, Answer


@dataclass(frozen=True)
class Restart:
    at: float  # seconds into the run, when pg_ctl restart was started
    took: float  # pg_ctl restart -w's own seconds (down, then up and accepting connections)


@dataclass(frozen=True)
class Verification:
    acknowledged: int  # rows acknowledged mutations say they wrote
    missing: int  # of those, not in the database at the end
    duplicated: int  # texts of one logical write found more than once
    committed_unacknowledged: int  # logical writes the client never saw succeed, yet written


@dataclass(frozen=True)
class Window:
    label: str
    restart: Restart | None
    answers: list[Answer]

    def errors(self) -> list[Answer]:
        return [a for a in self.answers if a.outcome != OK]

    def recovery(self) -> tuple[float, float] | None:
        """Seconds from the restart to the first success of a request sent after its first
        error, and to its last error; None when no request failed."""
        errors = self.errors()
        if self.restart is None or not errors:
            return None
        first_error = min(a.answered for a in errors)
        after = [a.answered for a in self.answers if a.outcome == OK and a.sent >= first_error]
        recovered = (min(after) if after else float("nan")) - self.restart.at
        return recovered, max(a.answered for a in errors) - self.restart.at


def windows(answers: list[Answer], restarts: list[Restart]) -> list[Window]:
    """The run cut at each restart: before the first, then from each to the next."""
    cuts = [0.0, *(r.at for r in restarts), float("inf")]
    out = []
    for i in range(len(cuts) - 1):
        inside = [a for a in answers if cuts[i] <= a.answered < cuts[i + 1]]
        restart = restarts[i - 1] if i else None
        label = "before the first restart" if i == 0 else f"restart {i} at {cuts[i]:.1f} s"
        out.append(Window(label, restart, inside))
    return out


def tenths(samples: list[tuple[float, float]], duration: float) -> list[float]:
    """The last sample at or before each tenth of the run."""
    out = []
    for k in range(1, 11):
        before = [mb for t, mb in samples if t <= k * duration / 10]
        out.append(before[-1] if before else float("nan"))
    return out


def print_report(
    answers: list[Answer],
    restarts: list[Restart],
    written: dict[str, int],
    unacknowledged: int,
    verification: Verification,
    rss: list[tuple[float, float]],
    duration: float,
    tracebacks: int,
) -> None:
    by_operation = Counter(a.operation for a in answers)
    ok = Counter(a.operation for a in answers if a.outcome == OK)
    parts = ", ".join(
        f"{op} {ok[op]:,}/{by_operation[op]:,}" for op in (READ, POST, START, PROBE)
    )
    print(f"\nrequests: {len(answers):,} in {duration:g} s ({len(answers) / duration:.1f}/s); "
          f"answered ok: {parts}")
    print(f"acknowledged writes: postMessage {written[POST]:,}, startConversation "
          f"{written[START]:,} ({verification.acknowledged:,} rows); given up on (refused, or "
          f"the run ended during a retry): {unacknowledged:,}")
    print(f"acknowledged writes missing afterwards: {verification.missing} "
          f"(of {verification.acknowledged:,} rows); written twice: {verification.duplicated}; "
          f"written though never acknowledged (outcome unknown to the client): "
          f"{verification.committed_unacknowledged}")
    internal = sum(1 for a in answers if "INTERNAL" in a.outcome)
    print(f"INTERNAL answers: {internal}; tracebacks in the gateway's log: {tracebacks}")
    for window in windows(answers, restarts):
        errors = window.errors()
        kinds = Counter(a.outcome for a in errors).most_common()
        detail = ", ".join(f"{kind} {n}" for kind, n in kinds)
        line = f"{window.label}: {len(errors)} errors" + (f" ({detail})" if detail else "")
        if window.restart is not None:
            line += f"; pg_ctl restart {window.restart.took:.1f} s"
            recovery = window.recovery()
            if recovery is None:
                line += "; no request failed"
            else:
                line += (f"; recovered {recovery[0]:.2f} s after the restart began "
                         f"(last error at {recovery[1]:.2f} s)")
        print(line)
    print(f"(recovered: the first success of a request sent after the restart's first error; "
          f"a probe read every {PROBE_S:g} s besides the clients, which wait 1 s before "
          f"resending a postMessage)")
    shown = " ".join(f"{mb:.0f}" for mb in tenths(rss, duration))
    print(f"RSS of the gateway worker at each tenth of the run (MB): {shown}")
