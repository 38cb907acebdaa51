"""`StaticResource`: files from a directory, with Werkzeug doing the HTTP.

`werkzeug.utils.send_from_directory` brings safe path joining, content types,
ETag/Last-Modified (304) and Range (206); this adds Synapse's anti-framing
headers, `index.html` for directories, and a JSON 404 for everything that is
not a file inside the directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory

from . import headers as h
from .errors import NotFoundError, SynapseError
from .resources import Resource, _unrecognized
from .responses import return_json_error
from .routing import unquote_strict

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from .request import SynapseRequest


class StaticResource(Resource):
    """Serves the files below `directory` (GET and HEAD), never anything outside."""

    def __init__(self, directory: str | os.PathLike[str], index: str = "index.html") -> None:
        self.directory = os.fspath(directory)
        self.index = index

    def render(self, request: SynapseRequest) -> WSGIApplication:
        request.servlet_name = type(self).__name__
        if request.method not in ("GET", "HEAD"):
            return return_json_error(request, _unrecognized(request, ["GET", "HEAD"]))
        try:
            relative = self._relative_path(request.postpath)
            response = send_from_directory(self.directory, relative, request.environ)
        except (NotFound, SynapseError):
            return return_json_error(request, NotFoundError())
        for name, value in h.CLICKJACKING_HEADERS:
            response.headers[name] = value
        return response

    def _relative_path(self, postpath: str) -> str:
        path = unquote_strict(postpath)
        if "\x00" in path or "\\" in path:
            raise NotFoundError()
        path = path.lstrip("/")
        if not path or path.endswith("/"):
            path += self.index
        return path
