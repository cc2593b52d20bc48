"""The subscriptions benchmark (``bench/subscriptions/``) at a tiny scale, as a subprocess (it
starts its own embedded PostgreSQL and gateway worker, and handles SIGINT itself): every socket
receives every message of its conversation once, in order, and nothing else. One run (~15 s),
the default mode (a conversation's sockets share one viewer, so its reads are shared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SUBSCRIBERS, PER_CONVERSATION, RATE, DURATION = 20, 5, 20, 3


def test_every_delivery_arrives_once(tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    argv = [
        sys.executable, "-m", "bench.subscriptions", "--subscribers", str(SUBSCRIBERS),
        "--per-conversation", str(PER_CONVERSATION), "--rate", str(RATE),
        "--duration", str(DURATION), "--json", str(figures_path),
    ]

    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(figures_path.read_text())
    assert figures["expected"] == RATE * DURATION * PER_CONVERSATION
    assert figures["received"] == figures["expected"]
    assert (figures["missing"], figures["duplicated"], figures["out_of_order"],
            figures["foreign"], figures["problems"]) == (0, 0, 0, 0, 0)
    calibration = figures["calibration"]
    assert (calibration["missing"], calibration["duplicated"]) == (0, 0)
    assert calibration["deliveries"] == SUBSCRIBERS
    # the statements were counted: at least one read transaction per message
    assert figures["per_message"]["transactions"] >= 1
