"""What the ported notes module expects of `hs`, and the WSGI app serving it.

synwsgi has no `HomeServer`: a ported module keeps calling `hs.get_auth()`,
`hs.get_clock()`, `hs.get_datastores().main` and reading `hs.config`, so the
application passes any object that answers those. Here: an in-memory store
whose methods are `async def` (as Synapse's are; they complete without
waiting, so synwsgi drives them with no event loop), `synwsgi.Auth` over the
store's token table, and Synapse's rate-limit setting for messages.

Serve it with `gunicorn 'examples.porting.homeserver:create_app()'`.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from synwsgi import JsonResource, Site
from synwsgi.auth import Auth, Requester, create_requester
from synwsgi.clock import MonotonicClock
from synwsgi.ratelimiting import RatelimitSettings
from synwsgi.transactions import Clock
from synwsgi.types import JsonDict


class NotesStore:
    """Notes and access tokens in memory (a database in a real application)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ordering = itertools.count(1)
        self._notes: dict[str, JsonDict] = {}
        self.tokens: dict[str, Requester] = {}
        #: users no rate limit applies to (Synapse's `ratelimit_override` rows)
        self.unlimited: set[str] = set()

    def add_token(self, token: str, user_id: str, device_id: str) -> None:
        self.tokens[token] = create_requester(
            user_id, device_id=device_id, access_token_id=len(self.tokens) + 1
        )

    def get_user_by_access_token(self, token: str) -> Requester | None:
        return self.tokens.get(token)

    async def get_ratelimit_for_user(self, user_id: str) -> Any:
        return _NoLimit() if user_id in self.unlimited else None

    async def add_note(self, owner: str, title: str, body: str) -> str:
        with self._lock:
            ordering = next(self._ordering)
            note_id = f"n{ordering}"
            self._notes[note_id] = {
                "note_id": note_id,
                "owner": owner,
                "title": title,
                "body": body,
                "stream_ordering": ordering,
            }
        return note_id

    async def get_note(self, note_id: str) -> JsonDict | None:
        return self._notes.get(note_id)

    async def get_notes_for_user(self, owner: str, before: int | None, limit: int) -> list[JsonDict]:
        with self._lock:
            notes = [
                note
                for note in self._notes.values()
                if note["owner"] == owner and (before is None or note["stream_ordering"] < before)
            ]
        notes.sort(key=lambda note: note["stream_ordering"], reverse=True)
        return notes[:limit]

    async def delete_note(self, note_id: str) -> None:
        with self._lock:
            self._notes.pop(note_id, None)


@dataclass
class _NoLimit:
    messages_per_second: float = 0
    burst_count: int = 0


@dataclass
class _Datastores:
    main: NotesStore


@dataclass
class _RatelimitConfig:
    rc_message: RatelimitSettings = field(
        default_factory=lambda: RatelimitSettings("rc_message", per_second=0.2, burst_count=10)
    )


@dataclass
class _Config:
    ratelimiting: _RatelimitConfig = field(default_factory=_RatelimitConfig)


class HomeServer:
    """The `hs` the ported module is given."""

    def __init__(self, clock: Clock | None = None, config: _Config | None = None) -> None:
        self.config = config or _Config()
        self._clock = clock or MonotonicClock()
        self._datastores = _Datastores(NotesStore())
        self._auth = Auth(self._datastores.main.get_user_by_access_token)

    def get_auth(self) -> Auth:
        return self._auth

    def get_clock(self) -> Clock:
        return self._clock

    def get_datastores(self) -> _Datastores:
        return self._datastores


def create_app(hs: HomeServer | None = None) -> Site:
    """The WSGI application: the notes servlets on a `JsonResource` at `/_matrix/client`."""
    from . import notes

    hs = hs or HomeServer()
    resource = JsonResource()
    notes.register_servlets(hs, resource)
    return Site({"/_matrix/client": resource})
