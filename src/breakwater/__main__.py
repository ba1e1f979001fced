"""``python -m breakwater`` runs the CLI."""

from breakwater.cli.main import main

main()
