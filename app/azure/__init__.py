"""Adapters to Azure: Azure ML, Azure Monitor, scoring, Table Storage, the follow-up queue, sinks, the credential."""
