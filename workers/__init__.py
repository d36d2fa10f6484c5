"""Job handlers, one module per queue; trainq's app lists them in ``TRAINQ_WORKER_MODULES``."""
