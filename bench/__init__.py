"""Benchmarks, printed as tables (figures, not pass/fail): ``make bench``."""
