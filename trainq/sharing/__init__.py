"""Sharing a cluster between keys (teams, projects, experiments): concurrency limits, fair turns
between keys, global rate limits and supersede.

A keyed job (``limit`` option, ``trainq.job.limit``) meets the ``gate`` when it is sent: it takes a
slot of its key and goes to the broker, or it is parked in the sharing store (recorded ``queued``
with the reason), holding no worker. ``admission`` starts parked jobs when a slot frees (the
``Sharing`` lifecycle plugin), on a worker's ``ticker`` and on a limit change. Jobs of a ``fair``
queue or type always meet the gate, and enter the broker only within their queue's window. Jobs
without a key, outside fair queues and types, never reach the store.

May import ``job``, ``store``, ``broker`` (with the Celery app) and ``inputs``; ``job.task`` and
``pipelines`` call the gate, one call per send route; ``job.lifecycle`` (a manual retry) reaches it
through the plugin's ``gate``.
"""
