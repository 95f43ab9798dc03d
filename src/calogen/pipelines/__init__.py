"""End-to-end workflows built from every layer (the CLI calls them; nothing imports them)."""
