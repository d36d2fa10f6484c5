"""trainq benchmarks: trainq beside raw Celery, RQ and Dramatiq on the same Redis (``python -m bench``)."""
