"""Operating trainq: worker processes and their reaper, control (cancel, retry, pause, purge,
reports), the local stack and embedded Redis, Flower and Prometheus metrics.

May import everything below the CLI and web.
"""
