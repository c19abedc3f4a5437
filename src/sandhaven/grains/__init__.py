"""Grains: one instance of an app — a document — with its own storage and sandbox."""

from sandhaven.grains.service import Grains, GrainView

__all__ = ["GrainView", "Grains"]
