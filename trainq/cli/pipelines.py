"""trainq CLI: pipelines commands (being written)."""
