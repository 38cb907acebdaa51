"""`Dispatch`: what a resource's lookup found for a request, as a value.

A resource's `get_handler` returns one (with the path arguments) instead of
writing on the request; the `Site` stores it on the request once, and every reader (metrics, logs,
tracing, error messages) sees the same answer. Synapse keeps the servlet's
name on `request.request_metrics.name`; here it is `request.servlet_name`,
a view onto this record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cancellation import is_function_cancellable

ServletCallback = Callable[..., Any]


class Dispatch:
    """The handler a lookup found, and the names it is known by.

    One per route (made when the route is registered) or per resource
    method, never per request: the path arguments of a request are kept
    apart, on `request.path_args`.
    """

    __slots__ = ("callback", "cancellable", "route", "servlet_name")

    def __init__(self, callback: ServletCallback, servlet_name: str, route: str | None = None) -> None:
        self.callback = callback
        #: the name metrics and logs use (Synapse's servlet class name)
        self.servlet_name = servlet_name
        #: the pattern that matched, when a router found the handler
        self.route = route
        #: `@cancellable`: stopped when its client leaves (known at registration)
        self.cancellable = is_function_cancellable(callback)

    def __repr__(self) -> str:
        return f"Dispatch({self.servlet_name!r}, route={self.route!r})"


#: What answers a path nothing serves: Synapse's name for it in metrics and logs.
UNRECOGNISED = "unrecognised_request_handler"
