"""The app's own infrastructure, free of Azure ML and rollout knowledge: settings, errors, clock, records, telemetry."""
