"""Property-based fuzzing of every input surface a user types or writes (issue 17, "Tests"):
pipeline files (random structures as JSON and YAML, random bytes, repeated keys), ``--config``, the
options of ``submit``, ``list``, ``dead``, ``schedule create`` and ``pipeline validate``, and the ``TRAINQ_*``
settings. Every input ends in exit 0 or 2, with no traceback, within a time bound and a
memory bound."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from tests.fixtures import ROOT
from tests.messages import envelope
from trainq.broker.quarantine import get_quarantine
from trainq.cli import main
from trainq.errors import DurationError, InvalidSetting, PayloadError
from trainq.inputs import documents
from trainq.inputs.documents import brief
from trainq.inputs.durations import parse_duration
from trainq.inputs.limits import MAX_CONFIG_BYTES, MAX_DOCUMENT_BYTES, REFUSED_PAYLOAD_KEPT_BYTES
from trainq.job import payloads
from trainq.pipelines.dag import parse
from trainq.schedules import Overlap, entries, overlap
from trainq.settings import celery_config, get_settings, url_problem

#: Per-input bounds: wall time (generous: CI shares 2 cores) and Python heap.
TIME_S = 2.0
HEAP_BYTES = 64 * 2**20

FUZZ = settings(
    max_examples=40,
    deadline=None,  # the time bound is asserted per input, outside Hypothesis' own deadline
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ids = st.text(max_size=12) | st.sampled_from(["a", "b", "train", "a\n", "..", "x" * 101])
jobs = st.fixed_dictionaries(
    {"job_id": ids},
    optional={
        "command": st.text(max_size=20),
        "type": st.sampled_from(["data", "training", "command", "nope"]),
        "config": values,
        "depends_on": st.lists(ids, max_size=3),
        "retry_count": st.integers(-2, 10**30),
        "timeout": st.floats() | st.text(max_size=12) | st.sampled_from(["15m", "1h 30m", "0", "nan"]),
        "environment": st.dictionaries(st.text(max_size=6), st.text(max_size=6) | st.integers(), max_size=3),
        "result_files": st.lists(
            st.text(max_size=12) | st.sampled_from(["..", "/abs", "out/*.txt"]), max_size=3
        ),
        "priority": st.integers(-3, 12),
        "queue": st.text(max_size=8),
    },
)
#: Lone surrogates: what JSON's "\\ud800" escape, or bytes that are not UTF-8 in argv, decode to.
unpaired = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)
pipelines = (
    st.fixed_dictionaries(
        {"jobs": st.lists(jobs | values, max_size=6)},
        optional={"pipeline_id": ids, "queue_id": ids, "extra": values},
    )
    | values
)


def invoke(*args: str) -> Result:
    """Given CLI ``args``, then it exits 0 or 2, no traceback, within TIME_S and HEAP_BYTES."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result = CliRunner().invoke(main, list(args))
    finally:
        took = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    assert took < TIME_S, f"{took:.1f}s for {args!r}"
    assert peak < HEAP_BYTES, f"{peak / 2**20:.0f} MiB for {args!r}"
    return result


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


@FUZZ
@given(data=pipelines, as_yaml=st.booleans())
def test_random_pipeline_structures(files: Path, data: Any, as_yaml: bool) -> None:
    path = files / ("p.yaml" if as_yaml else "p.json")
    path.write_text(yaml.safe_dump(data) if as_yaml else json.dumps(data))
    invoke("pipeline", "validate", str(path))


#: The fields of a pipeline job, and those that hold an integer.
JOB_FIELDS = ["job_id", "command", "type", "depends_on", "retry_count", "timeout", "result_files", "priority"]
INTEGER_FIELDS = {"retry_count", "priority"}


@FUZZ
@given(field=st.sampled_from(JOB_FIELDS), value=scalars | st.dates() | st.lists(scalars, max_size=2))
def test_a_job_field_of_any_value_is_at_most_one_line_and_a_boolean_is_never_a_number(
    field: str, value: Any
) -> None:
    # given a job whose one field holds any value YAML or JSON could give
    job = {"job_id": "a", "command": "true", field: value}
    # when the pipeline is checked
    problems = parse({"pipeline_id": "p", "jobs": [job]})[2]
    # then a value that is not a list is at most one problem, in the user's words
    assert len(problems) <= 1 or isinstance(value, list), problems
    assert not any(word in p for p in problems for word in (".str", ".float", ".int", "ResultFile")), problems
    # and a boolean is never taken as a number
    if field in INTEGER_FIELDS and isinstance(value, bool):
        assert problems == [f"job 'a': {field}: expected an integer, got the boolean {json.dumps(value)}"]


@FUZZ
@given(
    content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    suffix=st.sampled_from([".json", ".yaml"]),
)
def test_random_bytes_as_a_pipeline_file(files: Path, content: bytes, suffix: str) -> None:
    path = files / f"p{suffix}"
    path.write_bytes(content)
    invoke("pipeline", "validate", str(path))


yaml_tricks = st.lists(
    st.sampled_from(
        [
            "&a [1, 2]",
            "*a",
            "!!python/object:os.system x",
            "!!int '9'",
            "[" * 40,
            "]" * 40,
            "- - - -",
            "{a: 1}",
            ".nan",
            ".inf",
            "9" * 120,
            "<<: {a: 1}",
            "!!binary aGk=",
            "2026-01-01",
            "? a\n: b",
            "pipeline_id: p",
            "jobs:",
            "  - job_id: a",
            "    command: x",
            "--- ",
            "...",
            "%YAML 1.1",
        ]
    ),
    max_size=8,
).map("\n".join)


@FUZZ
@given(text=yaml_tricks)
def test_yaml_features_that_break_loaders(files: Path, text: str) -> None:
    path = files / "p.yaml"
    path.write_text(text)
    invoke("pipeline", "validate", str(path))


#: Text both JSON and YAML take as written (printable ASCII), and values that read back equal.
plain_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8)
plain = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_text
)


@FUZZ
@given(
    data=st.recursive(
        plain,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(plain_text, inner, max_size=3),
        max_leaves=12,
    ),
    as_yaml=st.booleans(),
)
def test_a_document_without_repeated_keys_reads_as_written(data: Any, as_yaml: bool) -> None:
    # given any value, equal keys at different places included; then it reads back as written
    text = yaml.safe_dump(data) if as_yaml else json.dumps(data)
    assert documents.parse(text, "d", "yaml" if as_yaml else "json", MAX_DOCUMENT_BYTES) == data


@FUZZ
@given(
    pairs=st.dictionaries(plain_text, plain, min_size=1, max_size=5),
    again=st.data(),
    nested=st.booleans(),
    suffix=st.sampled_from([".json", ".yaml"]),
)
def test_a_mapping_that_repeats_a_key_is_refused_naming_it(
    files: Path, pairs: dict[str, Any], again: st.DataObject, nested: bool, suffix: str
) -> None:
    # given a mapping (JSON text, which YAML reads too), one pair a line, that gives a key a second time
    key = again.draw(st.sampled_from(sorted(pairs)))
    items = [json.dumps(k) + ": " + json.dumps(v) for k, v in pairs.items()]
    first, at = list(pairs).index(key), again.draw(st.integers(0, len(items)))
    items.insert(at, json.dumps(key) + ": " + json.dumps(again.draw(plain)))
    mapping = "{" + ",\n".join(items) + "}"
    path = files / f"p{suffix}"
    path.write_text(f'{{"pipeline_id": "p", "jobs": [{mapping}]}}' if nested else mapping)
    # when it is validated; then it is refused naming the key and the line of its second time
    result = invoke("pipeline", "validate", str(path))
    line = max(at, first + (at <= first)) + 1
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {path}: duplicate key {brief(key)} (line {line})\n"


@FUZZ
@given(
    job_type=st.sampled_from(["data", "training", "command", "nope"]),
    config=values.map(json.dumps)
    | st.text(max_size=40)
    | st.just('{"a": ' * 40 + "1" + "}" * 40)
    | unpaired.map(lambda text: json.dumps({"dataset": text, "command": text})),
    priority=st.none() | st.integers(-5, 15).map(str) | st.text(max_size=3),
    tags=st.lists(st.text(max_size=8) | unpaired.map("k=".__add__), max_size=2),
    timeout=st.none() | st.text(max_size=10) | st.sampled_from(["0", "nan", "1" * 90, "1h 30m"]),
    delay=st.none() | st.sampled_from(["10m", "-1", "inf", "1e999"]),
    at=st.none()
    | st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-12-01T02:00Z"])
    | st.text(max_size=20),
    name=st.none() | st.text(max_size=10) | unpaired,
)
def test_submit_options(
    redis_client: redis.Redis,
    job_type: str,
    config: str,
    priority: str | None,
    tags: list[str],
    timeout: str | None,
    delay: str | None,
    at: str | None,
    name: str | None,
) -> None:
    args = ["submit", job_type, "--config", config]
    for option, value in (
        ("--priority", priority),
        ("--timeout", timeout),
        ("--delay", delay),
        ("--at", at),
        ("--name", name),
    ):
        if value is not None:
            args += [option, value]
    for tag in tags:
        args += ["--tag", tag]
    invoke(*args)


#: An option's number as typed: any size, any sign, or not a number.
numbers = (
    st.sampled_from(["-1", "0", "1", "99999999999999999999"])
    | st.integers(-(10**25), 10**25).map(str)
    | st.text(max_size=5)
)


@FUZZ
@given(
    command=st.sampled_from(["list", "dead"]),
    limit=st.none() | numbers,
    offset=st.none() | numbers,
    tag=st.none() | st.text(max_size=8) | st.sampled_from(["team=vision", "=x", "novalue"]),
)
def test_listing_options(
    redis_client: redis.Redis, command: str, limit: str | None, offset: str | None, tag: str | None
) -> None:
    if not redis_client.dbsize():  # a listing of nothing takes no limit or offset to Redis
        for _ in range(3):
            invoke("submit", "data", "--config", "{}", "--tag", "team=vision")
    args = [command]
    if limit is not None:
        args += ["--limit", limit]
    if command == "list":
        for option, value in (("--offset", offset), ("--tag", tag)):
            if value is not None:
                args += [option, value]
    invoke(*args)


@FUZZ
@given(
    overlap_given=st.none()
    | st.sampled_from(["allow", "skip", "SKIP", "", "skip "])
    | st.text(max_size=8)
    | unpaired,
    every=st.sampled_from(["1h", "0s", "soon"]) | st.text(max_size=6),
    pipeline=st.booleans(),
)
def test_schedule_create_options(
    redis_client: redis.Redis, files: Path, overlap_given: str | None, every: str, pipeline: bool
) -> None:
    # given a schedule's options as typed, of a job type or of a pipeline file
    target = ["--type", "probe"]
    if pipeline:
        (files / "p.json").write_text(
            json.dumps({"pipeline_id": "p", "jobs": [{"job_id": "a", "type": "probe"}]})
        )
        target = ["--pipeline", str(files / "p.json")]
    args = ["schedule", "create", "fuzz", "--every", every, *target]
    if overlap_given is not None:
        args += ["--overlap", overlap_given]
    # when it is created, then it exits 0 or 2: stored with the overlap given (default allow), or not at all
    result = invoke(*args)
    stored = {entry.name: entry for entry in entries()}
    if result.exit_code == 0:
        assert overlap(stored["fuzz"]) is Overlap(overlap_given or "allow")
        invoke("schedule", "delete", "fuzz")
    else:
        assert "fuzz" not in stored and result.output.count("\n") <= 4, result.output


class _Open(BaseModel):
    """A job type's model that keeps any field: only the payload's size can refuse it."""

    model_config = ConfigDict(extra="allow")


def _compact(value: Any) -> bytes:
    """``value`` as the shortest JSON, as trainq measures a payload."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@FUZZ
@given(
    size=st.integers(0, 3 * MAX_CONFIG_BYTES) | st.integers(MAX_CONFIG_BYTES - 100, MAX_CONFIG_BYTES + 100),
    fields=st.integers(1, 5),
    text=st.sampled_from("xé\u2603"),
)
def test_a_payload_of_any_size_is_taken_within_the_limit_and_stored_bounded(
    size: int, fields: int, text: str
) -> None:
    # given a payload of any size as JSON, in one or more fields, ASCII or not
    payload = {f"f{n}": text * (size // fields // len(text.encode())) for n in range(fields)}
    encoded = len(_compact(payload))
    started = time.monotonic()
    # when a job type checks it, then it is taken within the limit and refused past it, naming the limit
    try:
        payloads.parse(_Open, payload, "open", "allow")
        assert encoded <= MAX_CONFIG_BYTES
    except PayloadError as error:
        assert encoded > MAX_CONFIG_BYTES and f"larger than the limit of {MAX_CONFIG_BYTES:,} bytes" in str(
            error
        )
    # and what a record of it keeps, refused, is at most the limit, in a bounded time
    kept = len(_compact(payloads.masked(_Open, payload)))
    assert kept <= MAX_CONFIG_BYTES and (kept == encoded or kept < REFUSED_PAYLOAD_KEPT_BYTES + 100)
    assert time.monotonic() - started < TIME_S


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=80) | st.floats() | st.integers())
def test_durations_are_finite_or_refused(text: str | float | int) -> None:
    start = time.perf_counter()
    try:
        seconds = parse_duration(text)
    except DurationError:
        pass
    else:
        assert 0 <= seconds < float("inf")
    assert time.perf_counter() - start < 0.1


BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + n)}: &{chr(98 + n)} [" + ",".join([f"*{chr(97 + n)}"] * 9) + "]" for n in range(8)]
    + ["pipeline_id: *i", "jobs: [{job_id: a, command: x}]"]
)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bomb.yaml", BOMB),
        ("big.yaml", "pipeline_id: big\njobs:\n" + "  - {job_id: j, command: echo hello world}\n" * 800_000),
    ],
    ids=["billion-laughs", "30mb-yaml"],
)
def test_hostile_files_in_a_real_process_with_512_mib(tmp_path: Path, name: str, content: str) -> None:
    # given a hostile file; when the real CLI validates it with its address space capped at 512 MiB
    path = tmp_path / name
    path.write_text(content)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))

    result = subprocess.run(
        [sys.executable, "-m", "trainq", "pipeline", "validate", str(path)],
        cwd=ROOT,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=30,
    )
    # then it is refused with one message, exit 2
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


#: Settings whose values must parse: seconds, counts, durations, JSON, a choice.
TYPED_SETTINGS = [
    "TRAINQ_LEASE_S",
    "TRAINQ_HEARTBEAT_S",
    "TRAINQ_CONNECT_TIMEOUT_S",
    "TRAINQ_BROKER_TIMEOUT_S",
    "TRAINQ_VISIBILITY_TIMEOUT_S",
    "TRAINQ_BEAT_LOCK_S",
    "TRAINQ_MAX_RECOVERIES",
    "TRAINQ_DEFAULT_PRIORITY",
    "TRAINQ_RETENTION_DEAD",
    "TRAINQ_POOLS",
    "TRAINQ_RETRY",
    "TRAINQ_WORKER_MODULES",
    "TRAINQ_QUEUE_TYPE",
]
#: What an environment variable can hold (no NUL, valid UTF-8).
env_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)


#: Options of a Redis URL: redis-py's (each refuses some values), and one it does not know.
URL_OPTIONS = ["ssl_cert_reqs", "ssl_min_version", "socket_timeout", "health_check_interval", "db", "nosuch"]


@settings(max_examples=300, deadline=None)
@given(
    url=st.text(max_size=40)
    | st.builds(
        "{}:{}{}@{}:{}/{}{}".format,
        st.sampled_from(["redis", "rediss", "sentinel", "amqp", "http", "redis+socket", ""]),
        st.sampled_from(["//", "/", "///", ""]),  # a mistyped URL's password may land in its path
        st.sampled_from([":s3cret", "u:s3cret", "s3cret", ""]),
        st.sampled_from(["127.0.0.1", "[::1", "[::1]", "host", "s3cret"]),
        st.integers(-5, 10**6).map(str) | st.text(max_size=5) | st.just("s3cret"),
        st.integers(0, 20).map(str) | st.text(max_size=5),
        st.just("") | st.builds("?{}={}".format, st.sampled_from(URL_OPTIONS), st.text(max_size=8)),
    ),
    field=st.sampled_from(["broker_url", "result_backend", "registry_url"]),
)
def test_a_url_setting_is_usable_or_refused_without_its_password(url: str, field: str) -> None:
    # given any text as a broker, backend or registry URL, its options' values included
    # when it is checked, then it is refused in words that never show the password, or usable
    problem = url_problem(url, field)
    if problem is None:  # a usable URL's parts parse, their ports included
        for part in url.split(";"):
            urlsplit(part.strip()).port  # noqa: B018
    else:
        assert "s3cret" not in problem, problem


@FUZZ
@given(
    setting=st.sampled_from(TYPED_SETTINGS),
    value=env_text
    | st.sampled_from(
        ["nan", "inf", "-1", "0", "1e400", "{}", "[]", '{"training": {"concurrency": 0}}', '{"unacked": {}}']
    ),
)
def test_a_setting_parses_or_is_refused_naming_it(setting: str, value: str) -> None:
    # given any value of a typed TRAINQ_* variable
    saved = os.environ.get(setting)
    os.environ[setting] = value
    get_settings.cache_clear()
    try:
        started = time.monotonic()
        # when the settings are read, then they parse into a Celery config, or one InvalidSetting names it
        try:
            celery_config(get_settings())
        except InvalidSetting as error:
            assert str(error).startswith("invalid setting ") and setting in str(error), error
        assert time.monotonic() - started < TIME_S
    finally:
        if saved is None:
            del os.environ[setting]
        else:
            os.environ[setting] = saved
        get_settings.cache_clear()


@FUZZ
@given(
    command=st.sampled_from(["show", "requeue", "drop"]),
    entry=st.none() | st.text(max_size=20),
    queue=st.none() | st.text(max_size=30) | st.sampled_from(["unacked", "_kombu.x", "a" * 300, "probe"]),
)
def test_quarantine_options(
    redis_client: redis.Redis, command: str, entry: str | None, queue: str | None
) -> None:
    kept = get_quarantine()
    if not kept.count():  # one message to act on: a task message no worker knows
        kept.add("probe", json.dumps(envelope(task="trainq.no_such_type")).encode(), "unknown task")
    args = ["quarantine", command, kept.newest(1)[0].id if entry is None else entry]
    if command == "requeue" and queue is not None:
        args += ["--queue", queue]
    invoke(*args)
