"""One job: its record and states, the Celery task every job type uses, its lifecycle (the
state machine and the plugin protocol), what a handler sees, payload models, retries, leases,
artifacts, environment, GPUs, and how Celery's canvas and foreign clients' messages become jobs.

May import ``store``, ``broker`` and ``inputs``; pipelines and metrics plug in from above as
``trainq.job.lifecycle.Plugin`` subclasses, registered at the package root.
"""
