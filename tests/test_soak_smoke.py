"""``python -m bench.soak`` for a few seconds with one PostgreSQL restart (issue 16, item 12):
it runs end to end, the gateway recovers, and every acknowledged write is in the database
afterwards, none twice. (The figures of a full run are the README's; this holds the tool and
the property it measures.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_short_soak_with_one_restart_loses_no_acknowledged_write() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", "8", "--restart-every", "4",
         "--connections", "8", "--scale-conversations", "200"],
        cwd=REPO, capture_output=True, text=True, timeout=150, check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    written = re.search(r"acknowledged writes: postMessage (\d+), startConversation (\d+)", report)
    assert written is not None, report
    assert int(written[1]) > 0 and int(written[2]) > 0, report
    assert re.search(r"acknowledged writes missing afterwards: 0 \(of [\d,]+ rows\); "
                     r"written twice: 0;", report), report
    assert "INTERNAL answers: 0;" in report, report
    assert "before the first restart: 0 errors" in report, report
    restart = re.search(r"^restart 1 at .*$", report, re.MULTILINE)
    assert restart is not None and "restart 2" not in report, report
    assert re.search(r"recovered \d+\.\d+ s|no request failed", restart[0]), restart[0]
