"""Fuzzing trainq web's requests (Hypothesis) against a real server: whatever a client sends to
submit, to start a pipeline, to create a schedule or to list jobs, the answer is 2xx or 4xx, never
a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_web import AUTH_ENV, PASSWORD, USER, Web

MEDIA = [
    "application/json",
    "application/yaml",
    "text/plain",
    "text/yaml",
    "application/x-www-form-urlencoded",
    "",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
job_fields = st.fixed_dictionaries(
    {"job_id": st.text(max_size=12) | st.sampled_from(["a", "b", "c"])},
    optional={
        "type": st.sampled_from(["probe", "training", "data", "command", "nope"]) | st.text(max_size=8),
        "command": st.text(max_size=10),
        "config": json_values,
        "depends_on": st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=3) | json_values,
        "retry_count": st.integers(-2, 5) | json_values,
        "timeout": st.sampled_from(["1m", "soon", "0", "-5s"]) | json_values,
        "environment": st.dictionaries(st.text(max_size=5), st.text(max_size=8), max_size=2) | json_values,
        "result_files": st.lists(st.sampled_from(["out.txt", "/etc/passwd", "../x", "*"]), max_size=2),
        "priority": st.integers(-1, 11),
    },
)
pipelines = (
    st.fixed_dictionaries(
        {
            "pipeline_id": st.sampled_from(["fuzz", "", "a b"]) | st.text(max_size=10),
            "jobs": st.lists(job_fields, max_size=4),
        }
    )
    | json_values
)


@pytest.fixture(scope="module")
def fuzz_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    server = Web(tmp_path_factory.mktemp("web-fuzz"), AUTH_ENV, "web-fuzz")
    yield server
    server.process.stop()


@pytest.fixture
def client(fuzz_web: Web, redis_client: redis.Redis) -> Iterator[httpx.Client]:
    with fuzz_web.client(auth=(USER, PASSWORD)) as api:
        yield api


def _encoded(value: object, media: str) -> bytes:
    import json

    import yaml

    return (yaml.safe_dump(value) if "yaml" in media else json.dumps(value)).encode()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    job_type=st.sampled_from(["probe", "training", "secret", "command", "nope"])
    | st.text(min_size=1, max_size=10),
    body=json_values | st.binary(max_size=40),
    media=st.sampled_from(MEDIA),
    params=st.dictionaries(
        st.sampled_from(["priority", "name", "tag", "queue", "delay", "at", "timeout", "retries"]),
        st.text(max_size=12) | st.integers(-3, 12).map(str),
        max_size=4,
    ),
)
def test_submit_bodies_never_give_a_server_error(
    client: httpx.Client, job_type: str, body: object, media: str, params: dict[str, str]
) -> None:
    content = body if isinstance(body, bytes) else _encoded(body, media)
    path = "/api/v1/jobs/" + quote(job_type, safe="")
    response = client.post(path, content=content, params=params, headers={"content-type": media})
    assert response.status_code < 500, (response.status_code, response.text)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(definition=pipelines, media=st.sampled_from(MEDIA), raw=st.none() | st.binary(max_size=40))
def test_pipeline_bodies_never_give_a_server_error(
    client: httpx.Client, definition: object, media: str, raw: bytes | None
) -> None:
    content = raw if raw is not None else _encoded(definition, media)
    response = client.post("/api/v1/pipelines", content=content, headers={"content-type": media})
    assert response.status_code < 500, (response.status_code, response.text)


SMALL = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: A number as a client writes it: any size, any sign, or not a number.
numbers = st.sampled_from(["-1", "0", "99999999999999999999"]) | st.integers().map(str) | st.text(max_size=6)


@SMALL
@given(
    path=st.sampled_from(["/api/v1/jobs", "/api/v1/dead", "/jobs", "/dead"]),
    params=st.dictionaries(
        st.sampled_from(["limit", "offset", "tag", "state", "queue"]),
        numbers | st.sampled_from(["novalue", "team=x", "=x", "running"]),
        max_size=3,
    ),
)
def test_listing_queries_never_give_a_server_error(
    client: httpx.Client, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params)
    assert response.status_code < 500, (response.status_code, response.text)


@SMALL
@given(
    body=st.fixed_dictionaries(
        {
            "name": st.sampled_from(["nightly", "", "a b"]) | st.text(max_size=8),
            "type": st.sampled_from(["probe", "nope"]) | json_values,
            "cron": st.sampled_from(["0 0 30 2 *", "0 0 29 2 *", "0 2 * * *", "* * *", "@daily"])
            | st.text(max_size=12),
        },
        optional={
            "every": st.sampled_from(["1m", "0", "-5s", "soon"]) | json_values,
            "timezone": st.sampled_from(["Europe/Berlin", "Mars/Base", ""]) | json_values,
            "config": json_values,
            "priority": st.integers(-1, 11) | json_values,
            "overlap": st.sampled_from(["allow", "skip", "SKIP", ""]) | json_values,
        },
    )
    | json_values
)
def test_schedule_bodies_never_give_a_server_error(client: httpx.Client, body: object) -> None:
    content = _encoded(body, "application/json")
    response = client.post("/api/v1/schedules", content=content, headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text)


def test_an_uploaded_pipeline_file_runs(client: httpx.Client, tmp_path: Path) -> None:
    # given a pipeline file; when it is uploaded as a multipart form with a bearer token (no CSRF needed)
    text = "pipeline_id: upload\njobs:\n  - {job_id: one, type: probe}\n"
    token = {"authorization": f"Bearer {AUTH_ENV['TRAINQ_WEB_TOKEN']}"}
    files = {"file": ("p.yaml", text.encode(), "application/yaml")}
    response = client.post("/api/v1/pipelines", files=files, headers=token, auth=None)
    # then the run starts; a browser's form with basic auth alone needs the page's CSRF token
    assert response.status_code == 201, response.text
    browser = {"sec-fetch-site": "same-origin"}
    assert client.post("/api/v1/pipelines", files=files, headers=browser).status_code == 403
