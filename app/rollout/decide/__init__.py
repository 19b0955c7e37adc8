"""Rollout decisions (pure): plan, tags, naming, steps, gates, intents and the step function. No I/O."""
