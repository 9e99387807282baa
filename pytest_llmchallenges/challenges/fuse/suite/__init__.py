"""Grading and efficiency tests of the fuse challenge."""
