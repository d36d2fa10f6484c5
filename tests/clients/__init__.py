"""The clients tier: trainq driven only through what its users hold.

A Celery app in another process that never imports trainq, Celery's canvas with trainq's task
objects, the CLI from another directory. Each test checks the registry record, Celery's result
state and what the sender sees.
"""
