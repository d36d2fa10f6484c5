"""The broker side: queue and type names, the guarded Redis transport, and the quarantine of poison messages.

May import ``errors``, ``settings``, ``inputs`` and ``store``.
"""
