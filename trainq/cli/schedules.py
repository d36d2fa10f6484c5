"""trainq CLI: schedules commands (being written)."""
