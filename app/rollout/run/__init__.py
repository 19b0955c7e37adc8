"""The rollout's effect loop: the engine, progressive-delivery effects, follow-ups, reconcile, resync, notices."""
