"""``python -m trainq`` runs the CLI."""

from trainq.cli import main

main()
