"""Helpers for tests of Sandhaven and of apps packaged for it: real keys, real
packages built on the spot, no mocks."""
