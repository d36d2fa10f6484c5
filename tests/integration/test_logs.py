"""``trainq logs`` without ``-f`` on real Redis: every stored line, and a word on trimmed ones."""

from __future__ import annotations

from click.testing import CliRunner

from trainq.cli import main
from trainq.ops.control import submit
from trainq.store.registry import Registry


def test_logs_prints_every_stored_line(registry: Registry) -> None:
    # given a job with 18,002 log lines (more than one page)
    job_id = submit("probe", {}, countdown=3600)
    registry.append_log(job_id, [f"line {n}" for n in range(18_002)])
    # when its log is printed
    result = CliRunner().invoke(main, ["logs", job_id])
    # then every line is there, in order
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 18_002
    assert lines[0] == "line 0" and lines[-1] == "line 18001"
    assert result.stderr == ""


def test_logs_says_how_many_lines_the_cap_trimmed(registry: Registry) -> None:
    # given a job whose log outgrew a cap of 100 lines
    job_id = submit("probe", {}, countdown=3600)
    capped = Registry(registry.client, registry.keys, log_max_lines=100)
    capped.append_log(job_id, [f"line {n}" for n in range(1_000)])
    # when its log is printed
    result = CliRunner().invoke(main, ["logs", job_id])
    # then the kept lines are printed and the rest are counted, not silently missing
    kept = result.stdout.splitlines()
    assert kept[-1] == "line 999" and len(kept) < 1_000
    assert f"[{1_000 - len(kept)} earlier lines not kept" in result.stderr
    assert "TRAINQ_LOG_MAX_LINES" in result.stderr
