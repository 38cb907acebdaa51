"""Hardening tests: hostile input, static traversal, fuzzing, PEP 3333, short stress runs."""
