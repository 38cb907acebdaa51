"""Group f: gevent hub stall (placeholder).

TODO(other engineer): measure how long the gevent hub is blocked while
synwsgi serves requests (e.g. a greenlet ticking every 1 ms under load and
recording the worst delay). Return a :class:`bench.model.Group` (built like
the other groups: baseline row, optional ``targets``) so that ``bench.run``
prints, saves and charts it; return None to contribute no rows.
"""

from __future__ import annotations

from bench.model import Group


def hub_stall_bench() -> Group | None:
    print("hub stall benchmark: not yet implemented")
    return None
