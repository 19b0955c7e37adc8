"""Acceptance scenarios that run offline against the dev kit and, unchanged, against a real workspace."""
