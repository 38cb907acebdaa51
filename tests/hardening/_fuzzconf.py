"""How many Hypothesis examples each fuzz property runs (see conftest.py and stress/fuzz_campaign.py)."""

from __future__ import annotations

import os

DEFAULT_EXAMPLES = 300
ENV = "SYNWSGI_FUZZ_EXAMPLES"

#: Set from `--fuzz-examples` by conftest.py before the fuzz module is imported.
EXAMPLES = int(os.environ.get(ENV, DEFAULT_EXAMPLES))
