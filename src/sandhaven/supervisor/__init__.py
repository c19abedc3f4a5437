"""Starts, watches and stops grain sandboxes (see :mod:`.supervisor`)."""

from sandhaven.supervisor.process import ExitInfo
from sandhaven.supervisor.supervisor import GrainState, Supervisor, SupervisorConfig

__all__ = ["ExitInfo", "GrainState", "Supervisor", "SupervisorConfig"]
