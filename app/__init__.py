"""Common code of the AML event handler app: events, settings, errors, notifications, rollout."""
