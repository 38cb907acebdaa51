"""Benchmark suite for synwsgi (see bench/README.md)."""
