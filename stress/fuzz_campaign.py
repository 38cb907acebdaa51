"""The long fuzzing campaign: the properties of tests/hardening/test_fuzz.py with many more examples.

    python -m stress.fuzz_campaign --examples 100000     # >= 100 000 requests through the test Client
    python -m stress.fuzz_campaign --short               # 3 000 (a smoke run)

`--examples` is the total, shared among the properties (the main "any
request keeps the invariants" property gets half of it); each example sends
one request (two for HEAD-vs-GET). A property that fails stops at its first
(shrunk) counterexample, which is printed; the others still run. Prints
requests, time and failures; exits 1 when a property failed or fewer
requests than `--examples` were sent.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from stress._common import PROJECT_ROOT, Verdict, say

if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--examples", type=int, default=100_000, help="total examples (about one request each)"
    )
    parser.add_argument("--short", action="store_true", help="3 000 examples")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (random by default)")
    args = parser.parse_args(argv)
    total = 3000 if args.short else args.examples

    import logging

    # The app logs every 4xx at INFO; a campaign of 100 000 requests needs none of it.
    logging.disable(logging.INFO)
    import importlib

    from tests.hardening import _fuzzconf, test_fuzz

    names = [prop.__name__ for prop in test_fuzz.PROPERTIES]
    shares = {names[0]: total // 2}
    for name in names[1:]:
        shares[name] = (total - total // 2) // (len(names) - 1) + 1
    verdict = Verdict("fuzz_campaign")
    start_all = time.monotonic()
    requests = 0
    for name, examples in shares.items():
        # The properties read their example count when the module is executed.
        _fuzzconf.EXAMPLES = examples
        module = importlib.reload(test_fuzz)
        prop = getattr(module, name)
        if args.seed is not None:
            from hypothesis import seed

            prop = seed(args.seed)(prop)
        started = time.monotonic()
        try:
            prop()
            failure = None
        except Exception as exc:  # noqa: BLE001 - a failing property is reported, the others still run
            failure = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        sent = module.REQUESTS
        requests += sent
        seconds = time.monotonic() - started
        verdict.figure(name, {"examples": examples, "requests": sent, "seconds": round(seconds, 1)})
        say(f"  {name}: {examples} examples, {sent} requests in {seconds:.1f} s")
        if failure:
            say("    counterexample:\n      " + failure.replace("\n", "\n      ")[:3000])
        verdict.check(failure is None, f"{name} holds")
    elapsed = time.monotonic() - start_all
    verdict.figure("requests", requests)
    verdict.figure("req_per_s", round(requests / elapsed) if elapsed else 0)
    verdict.check(requests >= total, f"{requests} requests sent (>= {total})")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
