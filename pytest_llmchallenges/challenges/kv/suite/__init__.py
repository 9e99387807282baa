"""Grading and efficiency tests of the kv challenge."""
