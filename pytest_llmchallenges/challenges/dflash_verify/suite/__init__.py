"""Grading and efficiency tests of the dflash_verify challenge."""
