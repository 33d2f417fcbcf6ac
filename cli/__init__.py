"""Typer command-line application for houseprice (thin layer over the library)."""
