"""The broker side: queue and type names, the guarded Redis transport, batched RabbitMQ confirms
and the quarantine of poison messages.

May import ``errors``, ``settings``, ``inputs`` and ``store``.
"""
