"""Small helpers for the client tests: raw HTTP calls and timing."""

from __future__ import annotations

import http.client
import json
import secrets
from typing import Any
from urllib.parse import urlsplit


def raw_json(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One HTTP request with the standard library; (status, parsed JSON body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def unique(prefix: str) -> str:
    """A fresh lowercase name (user names, aliases) so modules can share a database."""
    return f"{prefix}{secrets.token_hex(4)}"
