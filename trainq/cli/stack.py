"""trainq CLI: stack commands (being written)."""
