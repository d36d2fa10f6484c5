"""The transport's screen: every queue entry is either refused with a reason or readable by kombu."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection

from tests.messages import envelope, poison_shapes
from trainq.broker.transport import envelope_problem

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
PATHS = [
    ("properties",),
    ("headers",),
    ("body",),
    ("content-type",),
    ("properties", "delivery_tag"),
    ("properties", "delivery_info"),
    ("properties", "body_encoding"),
    ("properties", "delivery_info", "exchange"),
    ("headers", "task"),
    ("headers", "id"),
]


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> bytes:
    """A valid Celery envelope with a few fields replaced by arbitrary JSON or deleted."""
    message: Any = copy.deepcopy(envelope())
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=3)):
        parent = message
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if draw(st.booleans()):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON)
    return json.dumps(message).encode()


def kombu_reads(raw: bytes) -> None:
    """Do what kombu's Redis channel and Celery's consumer do with an entry; raise if they would fail."""
    with Connection("memory://") as connection:
        channel = connection.default_channel
        message = channel.Message(json.loads(raw), channel=channel)
        _ = message.delivery_info["exchange"], message.delivery_info["routing_key"]  # kombu's QoS reads them
        if "task" in message.headers and message.content_type == "application/json":
            args, kwargs, options = message.decode()  # what Celery's worker unpacks
            assert isinstance(args, list) and isinstance(kwargs, dict) and isinstance(options, dict)


@settings(max_examples=200, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), mutated_envelopes()))
def test_an_entry_is_refused_with_a_reason_or_kombu_reads_it(raw: bytes) -> None:
    problem = envelope_problem(raw)
    if problem is None:
        kombu_reads(raw)
    else:
        assert isinstance(problem, str) and problem


def test_each_known_poison_shape_is_refused_and_a_valid_envelope_passes() -> None:
    # valid kombu envelopes that Celery itself refuses (task_rejected / task_unknown)
    celery_refuses = {"pickle", "yaml", "unknown task", "no headers", "no content type"}
    for name, raw in poison_shapes().items():
        assert (envelope_problem(raw) is None) == (name in celery_refuses), name
    assert envelope_problem(json.dumps(envelope()).encode()) is None
