"""The simulator's errors: one root, and the scenario's own error for files a person wrote."""

from __future__ import annotations


class SimnetError(Exception):
    """Root of the simulator's errors (a broken scenario, a driver bug, a worker that died)."""


class ScenarioError(SimnetError, ValueError):
    """A scenario file or flag is invalid; the message names the field and the fix."""
