"""POST a JSON body to a URL at a fixed rate for a bounded time, and report the status codes.

Usage: loadgen.py URL --rps 20 --duration 300 [--body JSON]. Every request has a 5 s timeout; the run
stops by itself after --duration seconds (or --requests requests) and prints one summary line every
5 seconds: `loadgen: sent=<n> codes={...}`, connection errors counted as code 0.
"""

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0.5, -1.2, 0.3, 2.0]}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--body", default=json.dumps(BODY))
    args = parser.parse_args()
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    body = args.body.encode()

    def one() -> None:
        req = urllib.request.Request(args.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                code = resp.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (urllib.error.URLError, OSError):
            code = 0
        with lock:
            codes[code] += 1

    start = time.monotonic()
    sent, last_report = 0, start
    while time.monotonic() - start < args.duration and sent < args.requests:
        threading.Thread(target=one, daemon=True).start()
        sent += 1
        now = time.monotonic()
        if now - last_report >= 5:
            with lock:
                print(f"loadgen: sent={sent} codes={dict(sorted(codes.items()))}", flush=True)
            last_report = now
        time.sleep(max(0.0, start + sent / args.rps - time.monotonic()))
    time.sleep(5)
    print(f"loadgen: done sent={sent} codes={dict(sorted(codes.items()))}", flush=True)


if __name__ == "__main__":
    main()
