"""Docs, packaging and deployment: the things a newcomer touches before any handler runs."""
