"""The same benchmark routes implemented on each peer framework.

Every module exposes a WSGI callable named ``app``.
"""

#: Display name -> module name under ``bench.peers``. "raw" is the floor.
PEER_MODULES: dict[str, str] = {
    "raw": "raw",
    "falcon": "falcon_app",
    "bottle": "bottle_app",
    "flask": "flask_app",
    "werkzeug_map": "werkzeug_map",
    "werkzeug_full": "werkzeug_full",
}
