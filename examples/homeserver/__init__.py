"""A small Matrix homeserver on synwsgi: enough of the Client-Server API for chat clients.

Run it from the repository root with
``gunicorn --config examples/homeserver/gunicorn.conf.py``; see ``app.py``.
"""
