"""Generators only: the synthetic city and synthetic birds (written in the data contracts)."""
