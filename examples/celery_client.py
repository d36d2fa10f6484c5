"""Submit trainq jobs from a service that has only ``celery`` installed (no trainq code).

    BROKER_URL=redis://127.0.0.1:6379/0 python examples/celery_client.py

The task name is ``trainq.<job type>``, the queue is the job type's (``data``, ``training``,
``detection``, ...), and the payload goes in ``kwargs``. The worker validates it, records the job
(tag ``source=celery-client``, job id = the task id) and runs it; an invalid payload is recorded
``failed`` and ``AsyncResult.get()`` raises with the same message. To read results, point
``RESULT_BACKEND`` at trainq's result backend (by default its Redis). See docs/clients.md.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery
from celery.result import AsyncResult

BROKER = os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("client", broker=BROKER, backend=os.environ.get("RESULT_BACKEND", BROKER))
# trainq declares its RabbitMQ queues with priorities 0-9; a client that declares one must agree.
app.conf.task_queue_max_priority = 10


def submit(job_type: str, payload: dict[str, Any], queue: str | None = None, **options: Any) -> AsyncResult:
    """Send one job of ``job_type``; ``options`` are Celery's (``countdown``, ``eta``, ``task_id`` ...)."""
    return app.send_task(f"trainq.{job_type}", kwargs=payload, queue=queue or job_type, **options)


def main() -> int:
    timeout = float(os.environ.get("TIMEOUT_S", "120"))
    queue = os.environ.get("QUEUE")  # only tests use another queue than the type's
    job = submit("data", {"dataset": "iris"}, queue)
    print(f"submitted data job {job.id}")
    print(f"succeeded: {job.get(timeout=timeout)}")
    typo = submit("data", {"dataset": "iris", "test_fracton": 0.2}, queue)
    try:
        typo.get(timeout=timeout)
    except Exception as exc:  # the worker's message, as an exception of the same name
        print(f"refused {typo.id}: {exc}")
        return 0
    print("the misspelt field was not refused", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
