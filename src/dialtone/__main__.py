"""``python -m dialtone`` runs the command-line interface."""

from dialtone.cli import main

raise SystemExit(main())
