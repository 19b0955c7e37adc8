"""Tag-driven no-code rollout: pure plan and step decisions, a ledger, and the engine that applies them."""
