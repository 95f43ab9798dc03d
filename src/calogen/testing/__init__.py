"""Tools for testing calogen itself: input mutation, reader fuzzing and tiny toy ShowerSets."""
