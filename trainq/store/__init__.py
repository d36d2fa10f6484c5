"""The store: every Redis key trainq owns (records, indexes, counters, leases) and the one client to it.

One connection pool per process: ``registry.get_registry()`` builds it once, and the pipeline runs,
metrics, the quarantine and the web app all use that registry's client. Key names live only in
``keys``; record encodings and their schema version in ``trainq.job.record``; ``migration`` brings
what an earlier release stored up to date. Three pools stay apart on purpose: kombu's (the broker
may be another server, and kombu manages its own channels), Celery's result backend's (Celery owns
its client and may point elsewhere) and redbeat's (it needs a client that decodes replies to text,
which the store's does not).

May import ``errors``, ``settings``, ``inputs`` and the data models in ``trainq.job.record``; nothing above.
"""
