"""``python -m calogen`` (also what ``torchrun -m calogen`` runs)."""

from calogen.cli.main import app

if __name__ == "__main__":  # spawned worker processes import this module without running it
    app()
