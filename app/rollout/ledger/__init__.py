"""The rollout ledger in Azure Tables: rows, the endpoint lease and traffic intents, indexes, history and retention."""
