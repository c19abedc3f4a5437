"""Sandhaven: a personal server platform where every document is its own sandbox."""

__version__ = "0.1.0"
