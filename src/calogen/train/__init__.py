"""The training loop (optimisers, EMA, checkpoints, resume, DDP). Not yet implemented."""
