"""Grading and efficiency tests of the ternary_training challenge."""
