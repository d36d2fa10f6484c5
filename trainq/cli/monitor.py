"""trainq CLI: monitor commands (being written)."""
