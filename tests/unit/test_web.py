"""trainq web's pure parts: the DAG layout, the credential check, and the address rule of ``trainq web``."""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from trainq.cli import main
from trainq.cli.group import EXIT_BAD_INPUT
from trainq.errors import DocumentError
from trainq.pipelines.dag import Dag
from trainq.settings import Settings
from trainq.web.api.body import JSON_TYPE, parse_definition, parse_json
from trainq.web.auth import Auth
from trainq.web.layout import BOX_H, BOX_W, depths, layout


def test_boxes_go_left_to_right_by_depth_and_each_dependency_gets_an_arrow() -> None:
    # given a diamond with a tail: a -> (b, c) -> d -> e, and a lone job
    graph = Dag({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "lone": []})
    # when it is laid out
    picture = layout(graph)
    boxes = {box.job: box for box in picture.boxes}
    # then columns follow the longest dependency path, and b and c share a column, stacked
    assert depths(graph) == {"a": 0, "lone": 0, "b": 1, "c": 1, "d": 2, "e": 3}
    assert boxes["a"].x < boxes["b"].x == boxes["c"].x < boxes["d"].x < boxes["e"].x
    assert boxes["b"].y != boxes["c"].y
    assert len(picture.arrows) == 5
    assert picture.width >= boxes["e"].x + BOX_W and picture.height >= max(b.y for b in picture.boxes) + BOX_H


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=3), min_size=1, max_size=40))
def test_no_two_boxes_overlap_and_every_job_is_drawn(edges: list[list[int]]) -> None:
    # given any DAG (each job depends only on jobs before it), when it is laid out
    graph = Dag({f"j{n}": [f"j{d}" for d in deps if d < n] for n, deps in enumerate(edges)})
    picture = layout(graph)
    # then each job has one box inside the picture, no two at one place, an arrow per dependency
    places = [(box.x, box.y) for box in picture.boxes]
    assert sorted(box.job for box in picture.boxes) == sorted(graph.deps)
    assert len(set(places)) == len(places)
    assert all(x + BOX_W <= picture.width and y + BOX_H <= picture.height for x, y in places)
    assert len(picture.arrows) == sum(len(deps) for deps in graph.deps.values())


def test_credentials_name_the_caller() -> None:
    # given basic auth for two users and a token
    auth = Auth(Settings(web_basic_auth=SecretStr("alice:pw1,bob:pw:2"), web_token=SecretStr("tok")))
    basic = lambda user, password: "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()  # noqa: E731
    # then each proves its caller, and anything else proves nobody
    assert auth.caller(basic("alice", "pw1")).name == "alice"  # type: ignore[union-attr]
    assert auth.caller(basic("bob", "pw:2")).name == "bob"  # type: ignore[union-attr]
    assert auth.caller("Bearer tok").bearer  # type: ignore[union-attr]
    for wrong in (basic("alice", "pw2"), basic("carol", "pw1"), "Bearer to", "Basic !!!", "", "tok"):
        assert auth.caller(wrong) is None, wrong
    # and with no credentials configured everyone is the anonymous local user
    assert Auth(Settings()).caller("") is not None and not Auth(Settings()).enabled


def test_trainq_web_refuses_a_public_address_without_credentials() -> None:
    # given no TRAINQ_WEB_* credentials; when trainq web is asked to bind every interface
    result = CliRunner().invoke(main, ["web", "--address", "0.0.0.0", "--port", "5999"])
    # then it refuses with the reason and exit 2, before serving anything
    assert result.exit_code == EXIT_BAD_INPUT
    assert "without authentication" in result.output


def test_request_bodies_are_read_with_the_same_bounds_as_files() -> None:
    # given bodies the CLI refuses in a file or --config: YAML aliases (a billion-laughs bomb
    # starts so), NaN and Infinity, a 5,000-digit number, nesting past the depth limit
    bodies = [
        (b"pipeline_id: &a p\njobs: [{job_id: *a, command: 'true'}]\n", "application/yaml"),
        (b'{"pipeline_id": "p", "jobs": [{"job_id": "a", "command": "true", "timeout": NaN}]}', JSON_TYPE),
        (b'{"epochs": Infinity}', JSON_TYPE),
        (b'{"epochs": ' + b"9" * 5000 + b"}", JSON_TYPE),
        (b"[" * 200 + b"]" * 200, JSON_TYPE),
    ]
    for body, media_type in bodies:
        # when trainq web reads them, then each is refused as bad input (422), not accepted
        with pytest.raises(DocumentError):
            parse_definition(body, media_type)
    with pytest.raises(DocumentError, match="Infinity"):
        parse_json(b'{"epochs": Infinity}', "the body")
