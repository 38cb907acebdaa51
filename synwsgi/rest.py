"""`client_patterns` and `interactive_auth_handler`, Synapse's `synapse.rest.client._base`.

`client_patterns` builds the one compiled regex a client-API servlet lists
in `PATTERNS`: the path under `/_matrix/client/<version>`, for every release
given and `unstable` (and the legacy `api/v1`). The `JsonResource` router
takes `re.Pattern`s as they are and percent-decodes each named group after
matching, so `%2F` stays inside a parameter.

Difference: synwsgi matches a pattern against the whole path; Synapse's
`pattern.match` only anchors the start, so a `path_regex` without a final
`$` also matched longer paths there. Synapse's own servlets end theirs in `$`.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Collection
from typing import Any, TypeVar, cast

from .errors import InteractiveAuthIncompleteError

#: The prefix of every Matrix client-server API path.
CLIENT_API_PREFIX = "/_matrix/client"


def client_patterns(
    path_regex: str,
    releases: Collection[str] = ("r0", "v3"),
    unstable: bool = True,
    v1: bool = False,
) -> list[re.Pattern[str]]:
    """The compiled pattern for `path_regex` (no leading `^`) under the client API prefix.

    The version is one path segment: `api/v1` when `v1`, each of `releases`,
    then `unstable` when `unstable`; with several, an alternation group.
    """
    versions = (["api/v1"] if v1 else []) + list(releases) + (["unstable"] if unstable else [])
    if not versions:
        raise RuntimeError("Must have at least one version for a URL")
    version = versions[0] if len(versions) == 1 else "(" + "|".join(versions) + ")"
    return [re.compile("^" + CLIENT_API_PREFIX + "/" + version + path_regex)]


C = TypeVar("C", bound=Callable[..., Any])


def interactive_auth_handler(orig: C) -> C:
    """Turn an `InteractiveAuthIncompleteError` from the handler into `(401, result)`.

    Works on `async def` handlers (Synapse's) and plain ones. synwsgi's error
    map renders that error as the same 401 anyway; this keeps ported code as it is.
    """
    if inspect.iscoroutinefunction(orig):

        @functools.wraps(orig)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await orig(*args, **kwargs)
            except InteractiveAuthIncompleteError as e:
                return 401, e.result

        return cast(C, wrapped_async)

    @functools.wraps(orig)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return orig(*args, **kwargs)
        except InteractiveAuthIncompleteError as e:
            return 401, e.result

    return cast(C, wrapped)
