"""Property-based fuzzing of what sharing takes from users: ``trainq limits set|delete`` values,
``submit``'s limit options, key templates, and a pipeline job's ``limit`` field. Every input ends
in exit 0 or 2 (or InvalidInput from the library), with no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_fuzz_inputs import FUZZ, invoke, values
from trainq.errors import InvalidInput
from trainq.job.limit import MAX_KEY_CHARS, render_key

keys = st.text(max_size=12) | st.sampled_from(["project=A", "", "x" * 201, "a\nb", "{tags[p]}"])
counts = st.none() | st.integers(-3, 10**6).map(str) | st.text(max_size=4)
rates = st.none() | st.text(max_size=8) | st.sampled_from(["5/s", "10/m", "0/s", "1e9/s", "none", "3/week"])
templates = st.text(max_size=30) | st.sampled_from(
    [
        "{tags[project]}",
        "{model}",
        "p={tags[project]}-{model}",
        "{model.__class__}",
        "{model!r}",
        "{model:>10}",
        "{0}",
        "{",
        "}",
        "{{literal}}",
        "{tags[a][b]}",
        "{nested}",
    ]
)


@FUZZ
@given(
    key=keys,
    max_running=counts,
    rate=rates,
    weight=counts,
    supersede=st.none() | st.sampled_from(["cancel", "refuse", "none", "maybe"]),
)
def test_limits_set_and_delete(
    redis_client: redis.Redis,
    key: str,
    max_running: str | None,
    rate: str | None,
    weight: str | None,
    supersede: str | None,
) -> None:
    args = ["limits", "set", "--", key] + ([max_running] if max_running is not None else [])
    for option, value in (("--rate", rate), ("--weight", weight), ("--supersede", supersede)):
        if value is not None:
            args[2:2] = [option, value]
    invoke(*args)
    invoke("limits", "delete", "--", key)
    invoke("limits", "list")


@FUZZ
@given(template=templates, max_running=counts, rate=rates, project=st.text(max_size=8))
def test_submit_limit_options(
    redis_client: redis.Redis, template: str, max_running: str | None, rate: str | None, project: str
) -> None:
    args = ["submit", "data", "--config", '{"dataset": "iris"}', "--tag", f"project={project}"]
    args += ["--limit-key", template]
    for option, value in (("--max-running", max_running), ("--rate", rate)):
        if value is not None:
            args += [option, value]
    invoke(*args)


@FUZZ
@given(
    template=templates,
    payload=st.dictionaries(st.sampled_from(["model", "nested", "n"]), values, max_size=3),
    tags=st.dictionaries(st.sampled_from(["project", "a", ""]), st.text(max_size=8), max_size=2),
)
def test_key_templates_render_or_are_refused(
    template: str, payload: dict[str, Any], tags: dict[str, str]
) -> None:
    try:
        key = render_key(template, payload, tags)
    except InvalidInput:
        return
    assert 1 <= len(key) <= MAX_KEY_CHARS and key.isprintable()


@FUZZ
@given(
    limit=values | st.fixed_dictionaries({"key": templates}, optional={"max_running": values, "rate": rates})
)
def test_pipeline_limit_field(tmp_path: Path, limit: Any) -> None:
    path = tmp_path / "p.json"
    job = {"job_id": "a", "type": "data", "config": {"dataset": "iris"}, "limit": limit}
    path.write_text(json.dumps({"pipeline_id": "p", "jobs": [job]}))
    invoke("pipeline", "validate", str(path))


@FUZZ
@given(
    queue=st.text(max_size=12) | st.sampled_from(["training", "", "a b", "celery", "x" * 300]),
    window=st.none()
    | st.integers(-3, 10**6).map(str)
    | st.text(max_size=6)
    | st.sampled_from(["auto", "AUTO", " 4 ", "0", "100001", "1e3", "-1", "٣"]),
)
def test_limits_fair_and_delete_queue(redis_client: redis.Redis, queue: str, window: str | None) -> None:
    args = ["limits", "fair"] + (["--window", window] if window is not None else []) + ["--", queue]
    invoke(*args)
    invoke("limits", "list")
    invoke("limits", "list", "--json")
    invoke("limits", "delete", "--queue", "--", queue)
