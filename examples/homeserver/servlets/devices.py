"""Devices and the end-to-end keys clients need to start.

`/devices`: list, read, rename, delete (one, or several through
`/delete_devices`). Deleting signs the device out (its access tokens go) and
needs user-interactive auth with the account's password, as the spec says;
the simplification: the UIA `session` is handed out but not tracked, so a
client may complete the stage with any session id.

`/keys/upload`, `/keys/query`, `/keys/claim`: the server stores device keys
and one-time keys and hands them back (each one-time key once). It never
reads them: no signatures checked, no cross-signing, no key backup, no
to-device messages, no `device_lists` changes in `/sync`. That is what an
end-to-end-capable client needs to start up against this server, not
working encryption.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synwsgi import (
    AuthError,
    Codes,
    NotFoundError,
    RestServlet,
    SynapseError,
    SynapseRequest,
    parse_json_object_from_request,
)

from ..rooms import random_string
from ._common import Requester, client_patterns

if TYPE_CHECKING:
    from ..app import HomeServer


class _HsServlet(RestServlet):
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.store = hs.store
        self.auth = hs.auth


def require_password_auth(
    hs: HomeServer, requester: Requester, body: dict[str, Any]
) -> tuple[int, Any] | None:
    """User-interactive auth with one stage, `m.login.password` for the requester's own account.

    Returns the 401 answer that asks for it, or None once it is done.
    """
    auth = body.get("auth")
    if not isinstance(auth, dict) or auth.get("type") != "m.login.password":
        session = auth.get("session") if isinstance(auth, dict) else None
        return 401, {
            "flows": [{"stages": ["m.login.password"]}],
            "params": {},
            "session": session if isinstance(session, str) else random_string(24),
        }
    identifier = auth.get("identifier") or {"type": "m.id.user", "user": auth.get("user")}
    user = identifier.get("user") if isinstance(identifier, dict) else None
    password = auth.get("password")
    if not isinstance(user, str) or hs.qualify(user) != requester.user_id:
        raise AuthError(403, "Interactive auth is for the requester's own account", Codes.FORBIDDEN)
    stored = hs.store.get_password_hash(requester.user_id)
    if not isinstance(password, str) or stored is None or not hs.passwords.verify(password, stored):
        raise AuthError(403, "Invalid password", Codes.FORBIDDEN)
    return None


class DevicesServlet(_HsServlet):
    PATTERNS = client_patterns("/devices$")

    def on_GET(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        devices = self.store.get_devices(requester.user_id)
        return 200, {"devices": [device.to_client(requester.user_id) for device in devices]}


class DeviceServlet(_HsServlet):
    PATTERNS = client_patterns("/devices/(?P<device_id>[^/]*)$")

    def on_GET(self, request: SynapseRequest, device_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        found = self.store.get_devices(requester.user_id, device_id)
        if not found:
            raise NotFoundError("No device found")
        return 200, found[0].to_client(requester.user_id)

    def on_PUT(self, request: SynapseRequest, device_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        name = body.get("display_name")
        if name is not None and not isinstance(name, str):
            raise SynapseError(400, "display_name must be a string", Codes.BAD_JSON)
        if not self.store.set_device_display_name(requester.user_id, device_id, name):
            raise NotFoundError("No device found")
        return 200, {}

    def on_DELETE(self, request: SynapseRequest, device_id: str) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request, allow_empty_body=True)
        challenge = require_password_auth(self.hs, requester, body)
        if challenge is not None:
            return challenge
        if not self.store.delete_device(requester.user_id, device_id):
            raise NotFoundError("No device found")
        return 200, {}


class DeleteDevicesServlet(_HsServlet):
    PATTERNS = client_patterns("/delete_devices$")

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        devices = body.get("devices")
        if not isinstance(devices, list) or not all(isinstance(device, str) for device in devices):
            raise SynapseError(400, "devices must be a list of device ids", Codes.BAD_JSON)
        challenge = require_password_auth(self.hs, requester, body)
        if challenge is not None:
            return challenge
        for device_id in devices:
            self.store.delete_device(requester.user_id, device_id)
        return 200, {}


class KeysUploadServlet(_HsServlet):
    PATTERNS = client_patterns("/keys/upload$")

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        requester = self.auth.get_user_by_req(request)
        device_id = requester.device_id
        assert device_id is not None
        body = parse_json_object_from_request(request)
        device_keys = body.get("device_keys")
        if isinstance(device_keys, dict):
            if device_keys.get("user_id") != requester.user_id or device_keys.get("device_id") != device_id:
                raise SynapseError(400, "device_keys must be this device's", Codes.INVALID_PARAM)
            self.store.set_device_keys(requester.user_id, device_id, device_keys)
        one_time_keys = body.get("one_time_keys") or {}
        if not isinstance(one_time_keys, dict):
            raise SynapseError(400, "one_time_keys must be an object", Codes.BAD_JSON)
        parsed = []
        for name, key in one_time_keys.items():
            algorithm, _, key_id = name.partition(":")
            if not key_id:
                raise SynapseError(400, f"Bad one-time key id {name!r}", Codes.INVALID_PARAM)
            parsed.append((algorithm, key_id, key))
        self.store.add_one_time_keys(requester.user_id, device_id, parsed)
        return 200, {"one_time_key_counts": self.store.count_one_time_keys(requester.user_id, device_id)}


class KeysQueryServlet(_HsServlet):
    PATTERNS = client_patterns("/keys/query$")

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        wanted = body.get("device_keys")
        if not isinstance(wanted, dict):
            raise SynapseError(400, "device_keys must be an object", Codes.BAD_JSON)
        result: dict[str, dict[str, Any]] = {}
        for user_id, device_ids in wanted.items():
            keys = self.store.get_device_keys(user_id)
            if isinstance(device_ids, list) and device_ids:
                keys = {device: value for device, value in keys.items() if device in device_ids}
            result[user_id] = keys
        return 200, {"device_keys": result, "failures": {}}


class KeysClaimServlet(_HsServlet):
    PATTERNS = client_patterns("/keys/claim$")

    def on_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        self.auth.get_user_by_req(request)
        body = parse_json_object_from_request(request)
        wanted = body.get("one_time_keys")
        if not isinstance(wanted, dict):
            raise SynapseError(400, "one_time_keys must be an object", Codes.BAD_JSON)
        claimed: dict[str, dict[str, Any]] = {}
        for user_id, devices in wanted.items():
            if not isinstance(devices, dict):
                continue
            for device_id, algorithm in devices.items():
                key = self.store.claim_one_time_key(user_id, device_id, str(algorithm))
                if key is not None:
                    claimed.setdefault(user_id, {})[device_id] = {key[0]: key[1]}
        return 200, {"one_time_keys": claimed, "failures": {}}


SERVLETS = (
    DevicesServlet,
    DeviceServlet,
    DeleteDevicesServlet,
    KeysUploadServlet,
    KeysQueryServlet,
    KeysClaimServlet,
)
