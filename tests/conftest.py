"""Shared fixtures: a real Redis database per test process, flushed around each test, and real
``celery worker`` processes started and stopped by pid.

Set before trainq is imported: the broker and registry are ``redis://127.0.0.1:6379/<db>``
(``TRAINQ_TEST_DB``, default 11, plus the pytest-xdist process's number: 11 and 12), leases and
sweeps are short so faults show quickly, and ``tests.jobs`` adds the job types the tests use.
"""

from __future__ import annotations

import os
import tempfile

import pytest

#: The pytest-xdist process this is (``gw0``, ``gw1``; none without xdist): each has its own db.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_DB = str(int(os.environ.get("TRAINQ_TEST_DB", "11")) + _WORKER)
_HOME = tempfile.mkdtemp(prefix="trainq-test-")
TEST_ENV = {
    "TRAINQ_BROKER_URL": f"redis://127.0.0.1:6379/{_DB}",
    "TRAINQ_HOME": _HOME,
    "TRAINQ_ARTIFACTS": os.path.join(_HOME, "artifacts"),
    "TRAINQ_WORKER_MODULES": '["workers.data", "workers.training", "workers.detection", "tests.jobs"]',
    "TRAINQ_LEASE_S": "3",
    "TRAINQ_HEARTBEAT_S": "0.5",
    "TRAINQ_REAPER_INTERVAL_S": "0.5",
    "TRAINQ_RETRY__BASE_S": "0.2",
    "TRAINQ_RETRY__JITTER": "false",
    "TRAINQ_KILL_GRACE_S": "2",
}
os.environ.update(TEST_ENV)

pytest_plugins = ["tests.fixtures"]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The RabbitMQ tests run in one test process: they declare and delete queues of fixed names."""
    for item in items:
        if item.get_closest_marker("rabbitmq"):
            item.add_marker(pytest.mark.xdist_group("rabbitmq"))
