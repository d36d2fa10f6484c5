"""Hostile and accidental input files and ``--config`` payloads: each ends in exit 2 with one
clear message, quickly, never a traceback (issue 17, findings 5-7)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from trainq.cli import main

#: Every bad input below is refused within this many seconds (the issue's bound).
QUICK_S = 2.0


def invoke(*args: str) -> tuple[Result, float]:
    """Run the CLI in-process; return its result and how long it took."""
    start = time.perf_counter()
    result = CliRunner().invoke(main, list(args))
    return result, time.perf_counter() - start


def refused(*args: str, match: str) -> str:
    """Given CLI ``args``, then the command exits 2 quickly with one ``error:`` line matching ``match``."""
    result, took = invoke(*args)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.exception
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert match in result.output, result.output
    assert took < QUICK_S, f"took {took:.1f}s"
    return result.output


def write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return str(path)


def one_job(**fields: object) -> str:
    """A pipeline of one command job ``a`` with ``fields``, as JSON."""
    return json.dumps({"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "x", **fields}]})


DEEP = 1_500


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("deep.json", "[" * DEEP + "]" * DEEP),
        ("deep.yaml", "[" * DEEP + "]" * DEEP),
        ("deep-block.yaml", "- " * DEEP + "x\n"),
        ("deep-map.json", '{"a":' * DEEP + "1" + "}" * DEEP),
    ],
    ids=["json", "yaml-flow", "yaml-block", "json-map"],
)
def test_deeply_nested_pipeline_files_are_refused(tmp_path: Path, name: str, content: str) -> None:
    # given a pipeline file nested 1,500 deep; when validated; then exit 2 naming the depth limit
    refused("pipeline", "validate", write(tmp_path, name, content), match="nested deeper than")


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_a_5000_digit_integer_is_refused(tmp_path: Path, suffix: str) -> None:
    # given a retry_count of 5,000 digits (Python refuses to convert it and crashed the CLI)
    digits = "7" * 5_000
    text = f'{{"pipeline_id": "p", "jobs": [{{"job_id": "a", "command": "x", "retry_count": {digits}}}]}}'
    refused("pipeline", "validate", write(tmp_path, f"p.{suffix}", text), match="number longer than")


@pytest.mark.parametrize("suffix", ["json", "yaml"])
def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"p.{suffix}", b'{"pipeline_id": "p\xff\xfe", "jobs": []}')
    refused("pipeline", "validate", path, match="not UTF-8")
    refused("pipeline", "run", path, match="not UTF-8")


def test_config_payloads_get_the_same_limits(tmp_path: Path) -> None:
    # given --config inline and as @file: too deep, a huge integer, not UTF-8, not JSON at all
    deep = '{"a":' * DEEP + "1" + "}" * DEEP
    refused("submit", "data", "--config", deep, match="nested deeper than")
    refused("submit", "data", "--config", "@" + write(tmp_path, "c.json", deep), match="nested deeper than")
    refused("submit", "data", "--config", '{"epochs": ' + "9" * 5_000 + "}", match="number longer than")
    not_utf8 = "@" + write(tmp_path, "b.json", b'{"a": "\xff"}')
    refused("submit", "data", "--config", not_utf8, match="not UTF-8")
    refused("submit", "data", "--config", '{"a": NaN}', match="NaN")


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    # given the classic YAML alias bomb as pipeline_id (its repr walked the whole expansion)
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 9):
        prev, cur = chr(ord("a") + n - 1), chr(ord("a") + n)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("pipeline_id: *i\njobs: [{job_id: a, command: x}]")
    refused("pipeline", "validate", write(tmp_path, "bomb.yaml", "\n".join(lines)), match="alias")


def test_thousands_of_mistyped_dependencies_validate_quickly(tmp_path: Path) -> None:
    # given 5,000 jobs each depending on a misspelled job (close-match search was quadratic)
    jobs = [{"job_id": f"step-{n}", "command": "true", "depends_on": [f"stpe-{n}"]} for n in range(5_000)]
    path = write(tmp_path, "typos.json", json.dumps({"pipeline_id": "p", "jobs": jobs}))
    output = refused("pipeline", "validate", path, match="depends on unknown job 'stpe-0' (did you mean")
    assert "more problems" in output
    assert len(output.splitlines()) < 200


def test_a_20000_digit_timeout_fails_fast(tmp_path: Path) -> None:
    text = one_job(timeout="1" * 20_000)
    refused("pipeline", "validate", write(tmp_path, "t.json", text), match="timeout")
    refused("submit", "data", "--timeout", "1" * 20_000, match="duration")


def test_a_30mb_yaml_file_is_refused_quickly(tmp_path: Path) -> None:
    job = "  - {job_id: j%d, command: 'echo hello world from a rather long command line'}\n"
    text = "pipeline_id: big\njobs:\n" + "".join(job % n for n in range(420_000))
    assert len(text) > 30_000_000
    refused("pipeline", "validate", write(tmp_path, "big.yaml", text), match="larger than")


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("..", "'..'"),
        ("out/../../x", "'..'"),
        ("../../etc/passwd", "'..'"),
        ("/data/raw/manifest.json", "absolute"),
        ("", "empty"),
    ],
)
def test_result_files_must_be_relative_globs_inside_the_working_directory(
    tmp_path: Path, entry: str, match: str
) -> None:
    text = one_job(result_files=[entry])
    refused("pipeline", "validate", write(tmp_path, "r.json", text), match=match)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("pipeline_id", "p\n", "pipeline_id"),
        ("job_id", "a\n", "job_id is invalid"),
        ("timeout", float("nan"), "timeout"),
        ("timeout", float("inf"), "timeout"),
        ("timeout", "0s", "timeout"),
        ("environment", {"A=B": "1"}, "environment name 'A=B'"),
        ("environment", {"1X": "1"}, "environment name '1X'"),
    ],
)
def test_bad_ids_timeouts_and_environment_names(
    tmp_path: Path, field: str, value: object, match: str
) -> None:
    job: dict[str, object] = {"job_id": "a", "command": "x"}
    data: dict[str, object] = {"pipeline_id": "p", "jobs": [job]}
    (data if field == "pipeline_id" else job)[field] = value
    text = json.dumps(data).replace("NaN", ".nan").replace("Infinity", ".inf")
    refused("pipeline", "validate", write(tmp_path, "x.yaml", text), match=match)
