"""A handler that raises on every request, for a minute: the worker survives, each error is logged once.

`--concurrency` keep-alive clients call `/_stress/raise?token=<unique>`
(stress/app.py: `raise RuntimeError("stress-raise token=...")`) for
`--seconds`, with a normal request every 20th call. Passes when every raising
call got the bare 500 JSON (`M_UNKNOWN`, nothing of the exception's text),
every normal call a 200, the same worker served throughout, and the server
log holds exactly one traceback per raising call: each token's
`RuntimeError` line once, no token missing, and nothing logged by gunicorn
itself ("Error handling request"), since synwsgi answered each one.

    python -m stress.raising_handler           # 60 s per worker class
    python -m stress.raising_handler --short   # 5 s (CI)
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import threading
import time

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from stress._common import Client, Server, Verdict, percentiles, say, server, worker_pid

EXPECTED_BODY = b'{"errcode":"M_UNKNOWN","error":"Internal server error"}'
TOKEN_LINE = re.compile(r"RuntimeError: stress-raise token=(\S+)")


def hammer(running: Server, seconds: float, concurrency: int) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    sent: list[str] = []
    wrong: list[str] = []
    normal_ok = [0]
    latencies: list[float] = []

    def loop(index: int) -> None:
        client = Client(running.host, running.port)
        n = 0
        local_tokens: list[str] = []
        local_latency: list[float] = []
        while time.monotonic() < deadline:
            n += 1
            if n % 20 == 0:
                reply = client.request("GET", "/_matrix/client/versions")
                if reply.status == 200:
                    with lock:
                        normal_ok[0] += 1
                else:
                    with lock:
                        wrong.append(f"normal: {reply.status}")
                continue
            token = f"c{index}n{n}"
            started = time.perf_counter()
            try:
                reply = client.request("GET", f"/_stress/raise?token={token}")
            except Exception as exc:  # noqa: BLE001 - recorded
                with lock:
                    wrong.append(f"{token}: {type(exc).__name__}: {exc}")
                continue
            local_latency.append(time.perf_counter() - started)
            local_tokens.append(token)
            if reply.status != 500 or reply.body != EXPECTED_BODY or b"stress-raise" in reply.body:
                with lock:
                    wrong.append(f"{token}: {reply.status} {reply.body[:100]!r}")
        client.close()
        with lock:
            sent.extend(local_tokens)
            latencies.extend(local_latency)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": sent, "wrong": wrong, "normal_ok": normal_ok[0], "latencies": latencies}


def run(kind: str, seconds: float, concurrency: int, verdict: Verdict) -> None:
    say(f"== {kind}: raising handler for {seconds:.0f} s, {concurrency} clients")
    with server(kind, log_level="info", threads=8) as running:
        pid = worker_pid(running)
        mark = running.log_mark()
        outcome = hammer(running, seconds, concurrency)
        time.sleep(1.0)  # the last log lines
        log = running.log(mark)
        still = running.worker_pids()
    sent: list[str] = outcome["sent"]  # type: ignore[assignment]
    wrong: list[str] = outcome["wrong"]  # type: ignore[assignment]
    logged = collections.Counter(TOKEN_LINE.findall(log))
    twice = [token for token, count in logged.items() if count > 1]
    missing = [token for token in sent if token not in logged]
    tracebacks = log.count("Traceback (most recent call last)")
    failed_lines = log.count("Failed handle request")
    gunicorn_errors = log.count("Error handling request")
    figures = {
        "raising_requests": len(sent),
        "normal_requests_ok": outcome["normal_ok"],
        "wrong_answers": len(wrong),
        "req_per_s": round(len(sent) / seconds),
        "tracebacks_logged": tracebacks,
        "failed_handle_lines": failed_lines,
        "tokens_logged_twice": len(twice),
        "tokens_missing": len(missing),
        "gunicorn_error_lines": gunicorn_errors,
        "latency_ms": percentiles(outcome["latencies"]),  # type: ignore[arg-type]
        "log_bytes": len(log),
    }
    verdict.figure(kind, figures)
    say(f"  figures: {json.dumps(figures)}")
    for line in wrong[:5]:
        say(f"  wrong: {line}")
    verdict.check(not wrong, f"{kind}: every raising call got the bare 500 JSON, every normal call 200")
    verdict.check(still == [pid], f"{kind}: the same worker served throughout ({pid} -> {still})")
    verdict.check(
        len(sent) > 0 and not missing, f"{kind}: every error logged ({len(missing)} of {len(sent)} missing)"
    )
    verdict.check(not twice, f"{kind}: no error logged twice ({twice[:3]})")
    verdict.check(tracebacks == len(sent), f"{kind}: {tracebacks} tracebacks for {len(sent)} errors")
    verdict.check(failed_lines == len(sent), f"{kind}: {failed_lines} 'Failed handle request' lines")
    verdict.check(gunicorn_errors == 0, f"{kind}: gunicorn logged {gunicorn_errors} errors of its own")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per worker class")
    parser.add_argument("--short", action="store_true", help="5 s per worker class (CI)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", default="pywsgi,gevent,gthread", help="comma-separated worker classes")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.short else args.seconds
    verdict = Verdict("raising_handler")
    for kind in args.workers.split(","):
        run(kind.strip(), seconds, args.concurrency, verdict)
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
