"""Tests of the infrastructure as code under infra/."""
