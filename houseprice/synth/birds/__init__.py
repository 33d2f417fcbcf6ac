"""Synthetic birds: a CUB-200-2011 stand-in written in the official folder layout."""
