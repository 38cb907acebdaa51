"""Synapse's own client servlets served by gunicorn through synwsgi (docs/synapse-bridge.rst)."""
