"""``python -m calogen`` (also what ``torchrun -m calogen`` runs)."""

from calogen.cli.main import app

app()
