"""Strict payloads: unknown fields are refused with the closest known name, unless a type opts out."""

from __future__ import annotations

import json
import string

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from trainq import PayloadError, get_job_type, job_type
from trainq.cli import main
from trainq.inputs.limits import FIELD_NAME_MAX_CHARS, PAYLOAD_ERRORS_MAX
from workers.training import TrainConfig


def refusal(job_type_name: str, payload: dict[str, object]) -> str:
    with pytest.raises(PayloadError) as caught:
        get_job_type(job_type_name).validate(payload)
    return str(caught.value)


def test_a_misspelt_hyperparameter_is_refused_with_the_closest_name() -> None:
    # given the typo: learningRate for learning_rate
    message = refusal("training", {"epochs": 3, "learningRate": 0.0002})
    # then the payload is refused, naming the field and the one meant
    assert message == (
        "invalid payload for job type 'training': "
        "unknown field 'learningRate' — did you mean 'learning_rate'?"
    )


def test_a_seed_payload_with_foreign_names_is_refused_not_run_on_defaults() -> None:
    # given seed 000's payload, written for another system's field names
    message = refusal("training", {"model_name": "resnet50", "dataset_id": "receipts-v1"})
    # then both fields are named, with what trainq calls them
    assert "unknown field 'model_name' — did you mean 'model'?" in message
    assert "unknown field 'dataset_id' — did you mean 'dataset'?" in message


def test_the_cli_exits_2_on_an_unknown_field_and_sends_nothing() -> None:
    # when trainq submit gets the typo
    config = json.dumps({"epochs": 3, "learningRate": 0.0002})
    result = CliRunner().invoke(main, ["submit", "training", "--config", config])
    # then it exits 2 with the message, before anything is recorded or sent
    assert result.exit_code == 2, result.output
    assert "did you mean 'learning_rate'?" in result.output


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")
    size: int = 1


class Nested(BaseModel):
    inner: Loose = Loose()
    depth: int = 0


@job_type("tq_unit_allow", input=TrainConfig, queue="unit", extra="allow")
def _allow(job: object, config: TrainConfig) -> None: ...


@job_type("tq_unit_model_says", input=Loose, queue="unit")
def _model_says(job: object, config: Loose) -> None: ...


@job_type("tq_unit_nested", input=Nested, queue="unit")
def _nested(job: object, config: Nested) -> None: ...


def test_a_job_type_can_opt_out_explicitly() -> None:
    # given a type declared with extra="allow", and one whose model says extra="ignore"
    # then the first keeps unknown fields and the second drops them, as each declared
    assert get_job_type("tq_unit_allow").validate({"note": "x"})["note"] == "x"
    assert get_job_type("tq_unit_model_says").validate({"size": 2, "note": "x"}) == {"size": 2}


def test_the_job_types_strictness_reaches_nested_models() -> None:
    # given a strict type whose nested model would ignore extras on its own
    message = refusal("tq_unit_nested", {"inner": {"sise": 2}})
    # then the nested field is refused with its closest name
    assert "unknown field 'inner.sise' — did you mean 'inner.size'?" in message


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(string.printable, min_size=1, max_size=200))
def test_any_unknown_field_is_named(name: str) -> None:
    # given any field name TrainConfig does not have
    if name in TrainConfig.model_fields:
        return
    # then the refusal names it (at most FIELD_NAME_MAX_CHARS of it)
    assert f"unknown field {name[:FIELD_NAME_MAX_CHARS]!r}" in refusal("training", {name: 1})


def test_many_unknown_fields_give_a_bounded_message() -> None:
    # given ten thousand unknown fields
    payload = {f"field_{n}": n for n in range(10_000)}
    # then the message lists the first few and counts the rest
    message = refusal("training", payload)
    assert message.count("unknown field") == PAYLOAD_ERRORS_MAX
    assert f"and {10_000 - PAYLOAD_ERRORS_MAX} more errors" in message
