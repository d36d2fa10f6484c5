"""Flower in a real headless Chromium: login with basic auth, a live worker per queue, a finished
training job listed with its name, the Broker page counting waiting jobs per queue; 401 without
credentials; history kept across a Flower restart.

The screenshots land in ``tests/artifacts/`` for CI to keep.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import ARTIFACTS, Workers, wait_for
from tests.integration.test_monitoring import (
    FLOWER_PASSWORD,
    FLOWER_USER,
    flower_workers,
    free_port,
    http_get,
    start_flower,
)
from trainq import JobState, get_registry
from trainq.ops.control import submit

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
QUEUES = ("training", "detection", "data")


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Chromium (Playwright launches it on a fresh temporary profile)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser test needs Debian's chromium at {CHROMIUM} (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def test_flower_shows_a_worker_per_queue_and_a_named_training_job(
    workers: Workers, tmp_path: Path, chromium: Any
) -> None:
    # given Flower with basic auth and one event-sending worker per ML queue
    port = free_port()
    flower = start_flower(tmp_path, port, workers)
    for queue in QUEUES:
        workers.start(queue, name=queue, events=True)
    wait_for(lambda: sum(flower_workers(port).values()) == len(QUEUES), 40, 0.25, message="3 workers online")
    # when a named training job runs to the end
    job_id = submit("training", {"epochs": 2}, job_name="nightly-digits")
    wait_for(lambda: get_registry().get(job_id).state is JobState.SUCCEEDED, 90, message="training done")
    wait_for(lambda: _flower_task(port, job_id).get("state") == "SUCCESS", 20, 0.2, message="Flower has it")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    login = {"username": FLOWER_USER, "password": FLOWER_PASSWORD}
    page = chromium.new_context(http_credentials=login, viewport={"width": 1600, "height": 900}).new_page()
    # then the logged-in browser sees a live worker for each queue
    response = page.goto(f"http://127.0.0.1:{port}/workers")
    assert response is not None and response.status == 200
    for queue in QUEUES:
        page.get_by_text(f"{queue}@", exact=False).first.wait_for(timeout=15_000)
    assert page.locator("text=Online").count() >= len(QUEUES)
    page.screenshot(path=str(ARTIFACTS / "flower-workers.png"), full_page=True)
    # and the task list shows the finished training job with its type, id and name
    page.goto(f"http://127.0.0.1:{port}/tasks")
    row = page.locator("tr", has_text=job_id)
    row.wait_for(timeout=15_000)
    assert "trainq.training" in row.inner_text() and "nightly-digits" in row.inner_text()
    assert "SUCCESS" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "flower-tasks.png"), full_page=True)
    # when two jobs wait on a queue no worker consumes, then the Broker page counts them
    for _ in range(2):
        submit("command", {"command": "true"})
    page.goto(f"http://127.0.0.1:{port}/broker")
    waiting = page.locator("tr#command")
    waiting.wait_for(timeout=15_000)
    assert waiting.locator("td").nth(1).inner_text().strip() == "2", waiting.inner_text()
    for queue in QUEUES:
        assert page.locator(f"tr#{queue}").locator("td").nth(1).inner_text().strip() == "0"
    assert "redis://" in page.content() and "not supported" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "flower-broker.png"), full_page=True)
    # and a client without credentials is refused
    assert chromium.new_context().request.get(f"http://127.0.0.1:{port}/workers").status == 401
    # when Flower restarts, then the job is still in its history
    flower.stop()
    start_flower(tmp_path, port, workers, name="flower-again")
    assert _flower_task(port, job_id).get("state") == "SUCCESS"


def _flower_task(port: int, job_id: str) -> dict[str, Any]:
    status, body = http_get(f"http://127.0.0.1:{port}/api/tasks", (FLOWER_USER, FLOWER_PASSWORD))
    return dict(json.loads(body).get(job_id) or {}) if status == 200 else {}
