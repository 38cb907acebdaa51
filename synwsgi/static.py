"""`StaticResource`: files from a directory, with Werkzeug doing the HTTP.

`werkzeug.utils.send_from_directory` brings safe path joining, content types,
ETag/Last-Modified (304) and Range (206); the policy adds Synapse's
anti-framing headers (`Kind.STATIC`); this adds `index.html` for directories,
and a JSON 404 for everything that is not a file inside the directory.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory

from ._internal.paths import unquote_strict
from .errors import NotFoundError, SynapseError
from .policy import Kind
from .resources import Handler, Resource, method_not_allowed

if TYPE_CHECKING:
    from .request import SynapseRequest


class StaticResource(Resource):
    """Serves the files below `directory` (GET and HEAD), never anything outside."""

    result_kind = Kind.STATIC

    def __init__(self, directory: str | os.PathLike[str], index: str = "index.html") -> None:
        self.directory = os.fspath(directory)
        self.index = index

    def get_handler(self, request: SynapseRequest) -> Handler:
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(request, ["GET"])
        return self._serve, {}

    def _serve(self, request: SynapseRequest) -> Any:
        try:
            return send_from_directory(self.directory, self._relative_path(request.postpath), request.environ)
        except (NotFound, SynapseError):
            raise NotFoundError() from None

    def _relative_path(self, postpath: str) -> str:
        path = unquote_strict(postpath)
        if "\x00" in path or "\\" in path:
            raise NotFoundError()
        path = path.lstrip("/")
        if not path or path.endswith("/"):
            path += self.index
        return path
