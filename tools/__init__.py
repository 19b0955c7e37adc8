"""Operator tools that run outside the deployed app: replay (events into the app) and the aml-rollouts CLI."""
