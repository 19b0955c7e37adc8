"""Monitoring signals, retraining submission, and registration of a completed run's model."""
