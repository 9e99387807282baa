"""Grading and efficiency tests of the beam_search challenge."""
