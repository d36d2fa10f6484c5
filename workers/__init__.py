"""Job handlers, one module per queue; trainq's app lists them in ``TRAINQ_WORKER_MODULES``.

The handlers import scikit-learn only when they run (the CLI loads these modules just to find
the job types). A worker for an ML queue imports it once in its main process instead, before
the pool forks, so no pool process pays that import (seconds on a busy machine) on its first job.
"""

from typing import Any

from celery import signals

ML_QUEUES = frozenset({"data", "training", "detection"})


@signals.celeryd_after_setup.connect
def _preload_ml(sender: str, instance: Any, **_: Any) -> None:
    if ML_QUEUES & set(instance.app.amqp.queues.consume_from or {}):
        import workers.models
        import workers.reports  # noqa: F401
