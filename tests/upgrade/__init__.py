"""Upgrade tests: data written by an earlier release, and old and new workers side by side."""
