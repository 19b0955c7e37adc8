"""aml-rollouts: the operator's command line for the AML event handler's rollouts (its HTTP API, nothing else)."""

from __future__ import annotations

__version__ = "0.1.0"
