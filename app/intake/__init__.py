"""Intake: events parsed at the edge (either schema), the allowlist, dispatch and the single error policy."""
