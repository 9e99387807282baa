"""Grading and efficiency tests of the flash_attention challenge."""
