"""Synapse's `synapse.types` names that servlet code imports, for ported modules.

`from synapse.types import JsonDict, Requester` becomes
`from synwsgi.types import JsonDict, Requester` and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, TypeAlias

from .auth import Requester as Requester
from .auth import UserID as UserID
from .auth import create_requester as create_requester

#: A JSON object as Python sees it.
JsonDict: TypeAlias = dict[str, Any]
#: A read-only JSON object.
JsonMapping: TypeAlias = Mapping[str, Any]
#: Several strings, but not a lone `str` (which is a collection of strings too).
StrCollection: TypeAlias = tuple[str, ...] | list[str] | Set[str]
#: Ordered strings, but not a lone `str`.
StrSequence: TypeAlias = tuple[str, ...] | list[str]
