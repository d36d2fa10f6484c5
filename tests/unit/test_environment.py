"""A job's ``environment`` and secret masking, and URL passwords kept out of messages (no network)."""

from __future__ import annotations

import logging
import os
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainq import get_job_type
from trainq.errors import BrokerUnavailable, InvalidInput, UnsetVariable
from trainq.job.clients import header_options
from trainq.job.environment import MASK, applied, expand, mask, masked
from trainq.settings import redacted

WORKER_ENV = {"TOKEN": "s3cr3t-tok", "HOME": "/root", "EMPTY": "", "PIN": "12345"}


def test_an_unset_variable_fails_naming_the_variable_the_setting_and_the_worker() -> None:
    # given an environment that references a variable the worker does not set
    # when it is expanded, then the error names all three
    with pytest.raises(UnsetVariable) as raised:
        expand({"API_TOKEN": "${MISSING_TOKEN}"}, WORKER_ENV, worker="celery@gpu-3")
    assert "${MISSING_TOKEN} is not set on worker celery@gpu-3" in str(raised.value)
    assert "environment API_TOKEN" in str(raised.value)
    with pytest.raises(UnsetVariable):
        expand({"A": "x-$MISSING_TOKEN"}, WORKER_ENV)


def test_a_default_applies_to_an_unset_or_empty_variable_only() -> None:
    variables, secrets = expand(
        {"A": "${MISSING:-fallback}", "B": "${EMPTY:-dflt}", "C": "${TOKEN:-unused}", "D": "${EMPTY}"},
        WORKER_ENV,
    )
    assert variables == {"A": "fallback", "B": "dflt", "C": "s3cr3t-tok", "D": ""}
    assert expand({"PRICE": "$$5 and $${TOKEN}"}, WORKER_ENV) == ({"PRICE": "$5 and ${TOKEN}"}, [])
    assert secrets == ["s3cr3t-tok"]  # a default is written in the file, so it is no secret


def test_ordinary_variables_are_expanded_but_never_masked() -> None:
    # given ${HOME} beside a real secret
    variables, secrets = expand({"WHERE": "${HOME}/data", "KEY": "$TOKEN"}, WORKER_ENV)
    assert variables == {"WHERE": "/root/data", "KEY": "s3cr3t-tok"}
    # then a log line naming /root keeps it, while the token is masked
    assert mask("cd /root/data; key=s3cr3t-tok", secrets) == f"cd /root/data; key={MASK}"


def test_short_and_common_values_are_not_masked_while_tokens_and_long_numbers_are() -> None:
    # given a worker whose GPU index, shard, flag and batch size are short or common, beside a token,
    # a four-character key and a PIN
    worker = {
        "GPU_ID": "1",
        "SHARD_ID": "12",
        "AMP": "True",
        "BATCH": "1024",
        "TOKEN": "s3cr3t-tok",
        "KEY": "aB9x",
        "PIN": "12345",
    }
    wanted = {name: f"${{{name}}}" for name in worker}
    # when a job references them all
    variables, secrets = expand(wanted, worker)
    # then only the token, the key and the PIN are secrets
    assert variables == worker
    assert secrets == ["s3cr3t-tok", "12345", "aB9x"]
    # and the others show as written in lines, metrics and results
    line = "epoch 1/3 loss 1 gpu=1 shard=12 amp=True bs=1024 tok=s3cr3t-tok key=aB9x pin=12345"
    assert (
        mask(line, secrets)
        == f"epoch 1/3 loss 1 gpu=1 shard=12 amp=True bs=1024 tok={MASK} key={MASK} pin={MASK}"
    )
    metrics = {"epoch": 1, "acc": 1.0, "bs": 1024, "gpu": "1", "tok": "s3cr3t-tok", "pin": 12345.0}
    shown = {"epoch": 1, "acc": 1.0, "bs": 1024, "gpu": "1", "tok": MASK, "pin": MASK}
    assert masked(metrics, secrets) == shown
    assert masked({"gpu=1 tok=s3cr3t-tok": [1, "12345"]}, secrets) == {f"gpu=1 tok={MASK}": [1, MASK]}


def test_a_value_left_unmasked_is_logged_by_name_never_by_value(caplog: pytest.LogCaptureFixture) -> None:
    # given a one-character worker value referenced by a job
    caplog.set_level(logging.INFO, logger="trainq.job.environment")
    # when it is expanded, then one line names the variable and the reference, not the value
    expand({"SHARD": "${SHARD_ID}", "KEY": "${TOKEN}"}, {"SHARD_ID": "7", "TOKEN": "s3cr3t-tok"})
    (message,) = caplog.messages
    assert "SHARD" in message and "${SHARD_ID}" in message and "not masked" in message
    assert "7" not in message and "s3cr3t-tok" not in message


@pytest.mark.parametrize(
    "environment",
    [
        {"CUDA_VISIBLE_DEVICES": "${GPU_UUID}"},
        {"DEVICES": "${CUDA_VISIBLE_DEVICES}"},
        {"LIBS": "${LD_LIBRARY_PATH}:/opt/lib"},
    ],
)
def test_device_and_runtime_variables_are_ordinary_on_either_side(environment: dict[str, str]) -> None:
    # given a job variable or a worker variable named as an ordinary device or runtime setting
    worker = {
        "GPU_UUID": "GPU-5b0c3c6e-2d1f",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",
        "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    }
    # when it is expanded, then its value is no secret, however long
    assert expand(environment, worker)[1] == []


def test_masking_replaces_whole_tokens_only() -> None:
    secrets = ["abc"]
    assert mask("abc abcd xabc abc-1 (abc)", secrets) == f"{MASK} abcd xabc {MASK}-1 ({MASK})"


def test_metrics_and_results_are_masked_in_keys_values_and_numbers() -> None:
    _, secrets = expand({"T": "${TOKEN}", "P": "${PIN}"}, WORKER_ENV)
    metrics = {"tok": "s3cr3t-tok", "s3cr3t-tok": 1.0, "pin": 12345.0, "loss": 0.5, "nested": ["s3cr3t-tok"]}
    assert masked(metrics, secrets) == {"tok": MASK, MASK: 1.0, "pin": MASK, "loss": 0.5, "nested": [MASK]}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:S3cretPW@127.0.0.1:6379/4", "redis://:***@127.0.0.1:6379/4"),
        ("amqp://guest:guest@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("rediss://user:p@ss:w0rd@host/0", "rediss://user:***@host/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            "redis+socket:///home/u/.trainq/redis/redis.sock",
            "redis+socket:///home/u/.trainq/redis/redis.sock",
        ),
    ],
)
def test_urls_are_shown_with_their_password_masked(url: str, shown: str) -> None:
    assert redacted(url) == shown
    assert redacted(f"cannot reach {url} (and {url})") == f"cannot reach {shown} (and {shown})"


@settings(max_examples=200, deadline=1000)
@given(
    user=st.text(string.ascii_letters + string.digits, max_size=8),
    tail=st.text(string.ascii_letters + string.digits + "!$%&*+,;=@:~-_.", max_size=24),
)
def test_no_password_survives_in_an_unreachable_message(user: str, tail: str) -> None:
    password = f"Zq9{tail}"  # a prefix no message text contains
    url = f"redis://{user}:{password}@10.0.0.7:6379/0"
    message = str(BrokerUnavailable(url, f"Error connecting to {url}"))
    assert "Zq9" not in message
    assert f"cannot reach the broker at redis://{user}:***@10.0.0.7:6379/0" in message


def test_a_name_the_os_refuses_leaves_no_variable_behind_in_the_worker() -> None:
    # given a job environment whose second name the OS refuses
    variables = {"TRAINQ_HX_LEAK": "from-an-earlier-job", "A=B": "x"}
    # when a worker applies it, then the job fails and the first variable is not left set
    # for every later job of that worker process
    with pytest.raises(ValueError), applied(variables):
        pass
    assert "TRAINQ_HX_LEAK" not in os.environ


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"environment": {"OK": "1", "A=B": "x"}}, "environment name 'A=B' is invalid"),
        (
            {"environment": {"OK": "1", "V": 1.1}},
            "environment.V: read as the number 1.1, not a string; quote",
        ),
        ({"environment": {"DEBUG": False}}, "environment.DEBUG: read as the boolean false, not a string"),
        ({"result_files": ["../other-job/model.pt"]}, "contains '..'"),
        ({"result_files": [{"path": "/etc/passwd", "required": True}]}, "is absolute"),
    ],
)
def test_python_and_celery_clients_get_pipeline_file_rules(options: dict[str, Any], problem: str) -> None:
    # given options a pipeline file may not give, passed by a Python caller or in a Celery
    # client's ``trainq`` header (both build the record through new_record)
    train = get_job_type("training")
    # when the job is built, then it is refused before anything is written
    with pytest.raises(InvalidInput, match=re.escape(problem)):
        train.new_record({"dataset": "iris"}, {**options, **header_options({})})


def test_a_celery_client_s_environment_must_hold_strings() -> None:
    # given a ``trainq`` header whose environment gives numbers (as JSON reads 1.10 and 007)
    options = header_options({"trainq": {"environment": {"MODEL_VERSION": 1.1, "RUN_ID": 7, "OK": "x"}}})
    # when the job is built, then each variable is named once, with what it was read as
    with pytest.raises(InvalidInput) as refused:
        get_job_type("training").new_record({"dataset": "iris"}, options)
    assert str(refused.value) == (
        "environment.MODEL_VERSION: read as the number 1.1, not a string; quote the value; "
        "environment.RUN_ID: read as the number 7, not a string; quote the value"
    )
