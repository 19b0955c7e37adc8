"""Notifications: what is sent, to which sinks, and each exactly once (the outbox)."""
