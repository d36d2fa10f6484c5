"""trainq's errors survive Celery's result backend: rebuilt from what it stores, they read the same."""

from __future__ import annotations

import inspect
import json

import pytest
from celery import Celery
from celery.backends.base import Backend

from trainq import errors
from trainq.errors import (
    BrokerRefused,
    BrokerUnavailable,
    CommandFailed,
    InvalidName,
    JobNotFound,
    KeyInUse,
    OutcomeUnknown,
    PayloadError,
    PipelineError,
    RunNotFound,
    ScheduleError,
    SubmitRefused,
    TrainqError,
    UnknownJobType,
    UnknownQueryParameter,
    UnsetVariable,
)

#: One error of each class that builds its message from fields.
BUILT = [
    BrokerUnavailable("redis://:secret@127.0.0.1:6379/8", "Connection refused", "registry"),
    BrokerRefused("redis://127.0.0.1:6379/8", "queue 'gpu' exists with other arguments"),
    OutcomeUnknown("redis://:secret@127.0.0.1:6379/8", "Timeout reading from socket", "registry", "c0ffee"),
    PayloadError("training", ["epochs: Input should be a valid integer", "unknown field 'lr'"]),
    UnknownJobType("trainnig", ["training", "data"]),
    InvalidName("queue", "a b", "must not hold spaces"),
    JobNotFound("c0ffee"),
    KeyInUse("nightly", "probe", "c0ffee"),
    RunNotFound("nightly-7"),
    PipelineError(["job 'a': unknown job type", "job 'b': depends on missing job 'c'"]),
    ScheduleError("nightly", "no such schedule"),
    UnknownQueryParameter(["unknown query parameter 'validate'; did you mean 'validate_only'?", "'prio'"]),
    UnsetVariable("TOKEN", "API_TOKEN", "gpu1@host"),
    CommandFailed(4),
    SubmitRefused("c0ffee", "refused: job f00d of nightly is still waiting or running"),
]


def stored_and_rebuilt(error: Exception) -> Exception:
    """``error`` as a client gets it back from Celery's JSON result backend."""
    backend = Backend(Celery(set_as_current=False), serializer="json")
    stored = json.loads(json.dumps(backend.prepare_exception(error)))
    return backend.exception_to_python(stored)


def test_every_error_building_its_message_is_exercised() -> None:
    built = {type(e) for e in BUILT}
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, TrainqError)]
    assert {c for c in classes if "__init__" in vars(c) or "_describe" in vars(c)} <= built


@pytest.mark.parametrize("error", BUILT, ids=lambda e: type(e).__name__)
def test_an_error_rebuilt_by_celery_reads_as_raised(error: TrainqError) -> None:
    # when Celery stores the error and a client rebuilds it
    rebuilt = stored_and_rebuilt(error)
    # then it is the same class, with the message once, and stores the same again
    assert type(rebuilt) is type(error) and error.args == (str(error),)
    assert str(rebuilt) == str(error) and rebuilt.args == error.args
    assert str(stored_and_rebuilt(rebuilt)) == str(error)


def test_a_rebuilt_command_failure_keeps_its_exit_code() -> None:
    rebuilt = stored_and_rebuilt(CommandFailed(4))
    assert isinstance(rebuilt, CommandFailed) and rebuilt.exit_code == 4
    assert str(rebuilt) == "command exited with code 4"
