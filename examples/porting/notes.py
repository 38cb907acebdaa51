"""A small notes API, written the way a Synapse client-API servlet module is.

Each user keeps private notes: `PUT .../notes/{txnId}` adds one (idempotent
per transaction id and rate-limited), `GET .../notes` pages through them,
`GET`/`DELETE .../note/{noteId}` read or remove one. The module takes a
homeserver object (`hs`) and registers its servlets on an HTTP server, as
every module under `synapse/rest/client/` does.

`synapse_notes.py` is the module as written for Synapse, `notes.py` the
same module after `port.sh` (module paths replaced, nothing else; see
docs/porting.rst); tests/test_porting_example.py checks both.
"""

# ruff: noqa: I001, RUF100 (the ported copy keeps the import order sed leaves)

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING

from synwsgi.errors import Codes, NotFoundError, SynapseError
from synwsgi.ratelimiting import Ratelimiter
from synwsgi.servlet import (
    RestServlet,
    assert_params_in_dict,
    parse_integer,
    parse_json_object_from_request,
    parse_string,
)
from synwsgi.request import SynapseRequest
from synwsgi.rest import client_patterns
from synwsgi.transactions import HttpTransactionCache
from synwsgi.types import JsonDict, Requester
from synwsgi.cancellation import cancellable

if TYPE_CHECKING:
    from synwsgi import HttpServer
    from examples.porting.homeserver import HomeServer

logger = logging.getLogger(__name__)

MAX_TITLE_LENGTH = 200
MAX_PAGE = 100


class NoteSendServlet(RestServlet):
    """Adds a note; a retry with the same transaction id gets the first answer."""

    PATTERNS = client_patterns("/org.example.notes/notes/(?P<txn_id>[^/]*)$", releases=())

    def __init__(self, hs: "HomeServer"):
        super().__init__()
        self.auth = hs.get_auth()
        self.store = hs.get_datastores().main
        self.txns = HttpTransactionCache(hs)
        self._ratelimiter = Ratelimiter(
            store=self.store,
            clock=hs.get_clock(),
            cfg=hs.config.ratelimiting.rc_message,
        )

    async def on_PUT(self, request: SynapseRequest, txn_id: str) -> tuple[int, JsonDict]:
        requester = await self.auth.get_user_by_req(request)
        return await self.txns.fetch_or_execute_request(
            request, requester, self._add_note, request, requester
        )

    async def _add_note(self, request: SynapseRequest, requester: Requester) -> tuple[int, JsonDict]:
        await self._ratelimiter.ratelimit(requester)

        content = parse_json_object_from_request(request)
        assert_params_in_dict(content, ["title", "body"])
        title, body = content["title"], content["body"]
        if not isinstance(title, str) or not isinstance(body, str):
            raise SynapseError(HTTPStatus.BAD_REQUEST, "'title' and 'body' must be strings", Codes.BAD_JSON)
        if len(title) > MAX_TITLE_LENGTH:
            raise SynapseError(
                HTTPStatus.BAD_REQUEST,
                f"'title' is longer than {MAX_TITLE_LENGTH} characters",
                Codes.TOO_LARGE,
            )

        note_id = await self.store.add_note(requester.user.to_string(), title, body)
        logger.info("%s added note %s", requester.user.to_string(), note_id)
        return HTTPStatus.OK, {"note_id": note_id}


class NotesServlet(RestServlet):
    """Pages through the requester's notes, newest first."""

    PATTERNS = client_patterns("/org.example.notes/notes$", releases=())

    def __init__(self, hs: "HomeServer"):
        super().__init__()
        self.auth = hs.get_auth()
        self.store = hs.get_datastores().main

    @cancellable
    async def on_GET(self, request: SynapseRequest) -> tuple[int, JsonDict]:
        requester = await self.auth.get_user_by_req(request)
        limit = parse_integer(request, "limit", default=10)
        from_token = parse_string(request, "from")
        if limit == 0 or limit > MAX_PAGE:
            raise SynapseError(
                HTTPStatus.BAD_REQUEST, f"'limit' must be between 1 and {MAX_PAGE}", Codes.INVALID_PARAM
            )

        before = None
        if from_token is not None:
            if not from_token.isdigit():
                raise SynapseError(HTTPStatus.BAD_REQUEST, "Unknown 'from' token", Codes.INVALID_PARAM)
            before = int(from_token)

        notes = await self.store.get_notes_for_user(requester.user.to_string(), before, limit + 1)
        response: JsonDict = {"chunk": notes[:limit]}
        if len(notes) > limit:
            response["next_batch"] = str(notes[limit - 1]["stream_ordering"])
        return HTTPStatus.OK, response


class NoteServlet(RestServlet):
    """Reads or deletes one note, the owner's only."""

    PATTERNS = client_patterns("/org.example.notes/note/(?P<note_id>[^/]*)$", releases=())

    def __init__(self, hs: "HomeServer"):
        super().__init__()
        self.auth = hs.get_auth()
        self.store = hs.get_datastores().main

    async def _get_own_note(self, requester: Requester, note_id: str) -> JsonDict:
        note = await self.store.get_note(note_id)
        if note is None:
            raise NotFoundError("Unknown note")
        if note["owner"] != requester.user.to_string():
            raise SynapseError(HTTPStatus.FORBIDDEN, "That note is not yours", Codes.FORBIDDEN)
        return note

    async def on_GET(self, request: SynapseRequest, note_id: str) -> tuple[int, JsonDict]:
        requester = await self.auth.get_user_by_req(request)
        return HTTPStatus.OK, await self._get_own_note(requester, note_id)

    async def on_DELETE(self, request: SynapseRequest, note_id: str) -> tuple[int, JsonDict]:
        requester = await self.auth.get_user_by_req(request)
        await self._get_own_note(requester, note_id)
        await self.store.delete_note(note_id)
        return HTTPStatus.OK, {}


def register_servlets(hs: "HomeServer", http_server: "HttpServer") -> None:
    NoteSendServlet(hs).register(http_server)
    NotesServlet(hs).register(http_server)
    NoteServlet(hs).register(http_server)
