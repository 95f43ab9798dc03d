"""Observables, distances and two-sample tests for the evaluation suite. Not yet implemented."""
