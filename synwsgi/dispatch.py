"""`Dispatch`: what a resource's lookup found for a request, as a value.

A resource's `get_handler` returns one instead of writing on the request;
the `Site` stores it on the request once, and every reader (metrics, logs,
tracing, error messages) sees the same answer. Synapse keeps the servlet's
name on `request.request_metrics.name`; here it is `request.servlet_name`,
a view onto this record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ServletCallback = Callable[..., Any]


class Dispatch:
    """The handler for a request, its keyword arguments, and the names it is known by."""

    __slots__ = ("callback", "kwargs", "route", "servlet_name")

    def __init__(
        self,
        callback: ServletCallback,
        kwargs: dict[str, Any],
        servlet_name: str,
        route: str | None = None,
    ) -> None:
        self.callback = callback
        #: the path parameters, unquoted
        self.kwargs = kwargs
        #: the name metrics and logs use (Synapse's servlet class name)
        self.servlet_name = servlet_name
        #: the pattern that matched, when a router found the handler
        self.route = route

    def __repr__(self) -> str:
        return f"Dispatch({self.servlet_name!r}, route={self.route!r})"


#: What answers a path nothing serves: Synapse's name for it in metrics and logs.
UNRECOGNISED = "unrecognised_request_handler"
