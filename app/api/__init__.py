"""The HTTP API: rollout status and operator controls."""
