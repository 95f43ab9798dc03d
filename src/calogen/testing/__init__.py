"""Tools for testing calogen itself: input mutation and reader fuzzing."""
