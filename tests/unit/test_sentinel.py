"""Sentinel addresses in kombu's form, and the Celery/redbeat configuration that follows them."""

from __future__ import annotations

import pytest
from redis.sentinel import MasterNotFoundError

from trainq.errors import InvalidInput
from trainq.settings import Settings, celery_config
from trainq.store.registry import unreachable
from trainq.store.sentinel import parse

URL = "sentinel://:s3cret@10.0.0.1:26379/2;sentinel://10.0.0.2;sentinel://10.0.0.3:26380"


def test_addresses_password_and_db_are_read_from_every_part() -> None:
    # given kombu's multi-address form; when parsed; then every sentinel, the password and db are kept
    address = parse(URL)
    assert address.hosts == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)]
    assert (address.password, address.db) == ("s3cret", 2)


@pytest.mark.parametrize("bad", ["sentinel://", "redis://h:6379;sentinel://h2", "sentinel://h;"])
def test_a_malformed_address_names_the_bad_part(bad: str) -> None:
    # given an address with an empty or foreign part; when parsed; then InvalidInput says which
    with pytest.raises(InvalidInput, match="bad Sentinel address"):
        parse(bad)


def test_broker_backend_and_beat_all_follow_the_named_master() -> None:
    # given a Sentinel broker and a master name
    settings = Settings(broker_url=URL, sentinel_master="trainq", sentinel_password="sp")
    # when Celery's configuration is built
    config = celery_config(settings)
    # then kombu's transport, the result backend and redbeat are told the master's name
    assert config["broker_url"] == config["result_backend"] == URL
    assert config["broker_transport_options"]["master_name"] == "trainq"
    assert config["broker_transport_options"]["sentinel_kwargs"] == {"password": "sp"}
    assert config["result_backend_transport_options"]["master_name"] == "trainq"
    assert config["redbeat_redis_url"] == "redis-sentinel://"
    beat = config["redbeat_redis_options"]
    assert (beat["service_name"], beat["password"], beat["db"]) == ("trainq", "s3cret", 2)
    assert beat["sentinels"][2] == ("10.0.0.3", 26380)
    # and a lone Redis keeps kombu's plain options
    assert (
        "master_name"
        not in celery_config(Settings(broker_url="redis://h:6379/0"))["broker_transport_options"]
    )


@pytest.mark.parametrize("bad", ["sentinel://:pw@h:26379/abc", "sentinel://:pw@h:x1", "sentinel://h:99999"])
def test_a_port_or_db_that_is_not_a_number_is_bad_input_not_a_crash(bad: str) -> None:
    # given an address whose port or db is not a number; when parsed; then InvalidInput (exit 2)
    with pytest.raises(InvalidInput, match="the port and db are numbers"):
        parse(bad)


def test_no_master_found_is_one_short_line_naming_the_registry() -> None:
    # given redis-py's error when no sentinel names a master (it appends each sentinel client's repr)
    clients = "<redis.client.Redis(<redis.connection.ConnectionPool(<...>)>)> - ConnectionError"
    error = MasterNotFoundError(f"No master found for 'trainq' : {clients}")
    # when the CLI reports it (a command that failed on its first Redis call, without a ping)
    message = str(unreachable(error))
    # then it reads like ping's message: the registry, the master's name, no client reprs
    assert message.startswith("cannot reach the registry at ") and "No master found for 'trainq'." in message
    assert "<redis" not in message and len(message) < 200
