"""One job: its record and states, the Celery task every job type uses, what a handler sees,
payload models, retries, leases, artifacts, environment, GPUs, and how Celery's canvas and
foreign clients' messages become jobs.

May import ``store``, ``broker`` and ``inputs``; pipelines and operations plug in from above.
"""
