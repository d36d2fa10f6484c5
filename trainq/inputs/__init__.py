"""Reading what users hand in: bounded JSON/YAML documents, durations, and the input limits.

A leaf: imports nothing of trainq but ``errors``.
"""
