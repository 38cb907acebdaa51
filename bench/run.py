"""Run the benchmark suite: ``python -m bench.run [--quick]`` from the repo root
(``python bench/run.py`` works too). See bench/README.md."""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
