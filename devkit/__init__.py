"""Offline dev kit: local stand-ins for Azure ML, managed identity, Event Grid and Storage."""
