"""Grading and efficiency tests of the backwards challenge."""
