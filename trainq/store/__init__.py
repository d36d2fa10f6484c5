"""The store: every Redis key trainq owns (records, indexes, counters, leases) and the one client to it.

May import ``errors``, ``settings``, ``inputs`` and the data models in ``trainq.job.record``; nothing above.
"""
