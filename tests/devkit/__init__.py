"""Tests of the offline dev kit: real Azure SDKs against the local stand-ins."""
