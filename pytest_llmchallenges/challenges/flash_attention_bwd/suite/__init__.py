"""Grading and efficiency tests of the flash_attention_bwd challenge."""
