"""Valuation: the house-price model, explanations of valuations, Table-2 evaluation."""
