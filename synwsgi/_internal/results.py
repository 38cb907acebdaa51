"""The one conversion: whatever a handler returned becomes a `Response`.

Handlers may return `(code, object)`, a `Response` (synwsgi's), a Werkzeug
`Response` or any other WSGI application, an iterator of body bytes, HTML
text (from an HTML resource), or None after `respond_with_*`/`finish()`. An
`async def` handler's coroutine is driven first (`drive`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from werkzeug.test import run_wsgi_app

from ..clock import resolve
from ..policy import Kind
from ..responses import Response, html_response, json_response, json_stream_response
from . import runtime

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from ..request import SynapseRequest


def call(request: SynapseRequest, callback: Any, kwargs: dict[str, Any]) -> Any:
    """Call a handler, and drive its result if it is awaitable (`clock.resolve`)."""
    result = callback(request, **kwargs)
    if type(result) is tuple or result is None:  # the common answers, told apart cheaply
        return result
    return resolve(result, request.config.async_driver)


def to_response(request: SynapseRequest, result: Any, kind: Kind, canonical_json: bool = True) -> Response:
    """`result` as a `Response`; `kind` is what the resource serves (JSON or HTML).

    The status of a result that carries none (a body iterator, None after
    `respond_with_*`/`write()`) is the request's, as `setResponseCode` left it.
    A returned `Response` is used as it is: it may be shared between requests.
    """
    if result is None:
        return _from_request(request)
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        code, body = result
        if kind is Kind.HTML:
            return html_response(code, body)
        return _json(request, code, body, canonical_json)
    if kind is Kind.HTML and isinstance(result, (str, bytes)):
        return html_response(request.code, result)
    if callable(result):
        return run_app(request, cast("WSGIApplication", result))
    if kind is not Kind.HTML and _is_body_iterator(result):
        return json_stream_response(request.code, result)
    raise TypeError(f"{request.servlet_name} returned {type(result).__name__}, which is not a response")


def _json(request: SynapseRequest, code: int, obj: Any, canonical_json: bool) -> Response:
    config = request.config
    pieces = runtime.current().big_json(obj, config.large_json_items, config.max_chunk_size, canonical_json)
    if pieces is not None:
        return json_stream_response(code, pieces)
    return json_response(code, obj, canonical_json=canonical_json)


def _from_request(request: SynapseRequest) -> Response:
    """What `respond_with_*` or `write()`/`finish()` left on the request, with its status."""
    response = request.response
    if response is not None:
        return response if response.status == request.code else response.replace(status=request.code)
    body = request.written()
    if body is not None:
        return Response(request.code, [("Content-Length", str(len(body)))], body)
    raise RuntimeError(f"{request.servlet_name} returned None without sending a response")


def run_app(request: SynapseRequest, app: WSGIApplication) -> Response:
    """Any WSGI application's answer (a Werkzeug `Response`, say) as a `Response`.

    Werkzeug's `run_wsgi_app` copes with applications that call
    `start_response` late, from inside their body iterator.
    """
    app_iter, status, headers = run_wsgi_app(app, request.environ)
    return Response(int(status.split(" ", 1)[0]), headers.to_wsgi_list(), app_iter)


def _is_body_iterator(result: object) -> bool:
    return isinstance(result, Iterator) or (
        isinstance(result, Iterable) and not isinstance(result, (bytes, str, dict, list))
    )
