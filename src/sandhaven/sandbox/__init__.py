"""Grain sandboxes: bubblewrap command line, seccomp filter, cgroups, bridge.

See docs/reference/sandbox.md for what a grain sees and what it cannot do.
"""

from sandhaven.sandbox.spec import GrainSpec, Limits

__all__ = ["GrainSpec", "Limits"]
