"""The toolkit pieces every servlet uses, imported in one place."""

from __future__ import annotations

from .._standin import client_patterns as client_patterns
