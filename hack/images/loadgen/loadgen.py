"""POST a JSON body to a URL at a fixed rate for a bounded time, and report the status codes.

Usage: loadgen.py URL --rps 20 --duration 300 [--body JSON]. Every request has a 5 s timeout; the run
stops by itself after --duration seconds (or --requests requests) and prints one summary line every
5 seconds: `loadgen: sent=<n> codes={...} versions={...}`, connection errors counted as code 0, and
`versions` counting the `model_version` of each 200 answer (V2 inference responses carry it): which
version's answers the clients got.
"""

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0.5, -1.2, 0.3, 2.0]}]}


def report(sent: int, codes: Counter[int], versions: Counter[str], done: bool = False) -> str:
    return (f"loadgen: {'done ' if done else ''}sent={sent} codes={dict(sorted(codes.items()))} "
            f"versions={dict(sorted(versions.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--body", default=json.dumps(BODY))
    args = parser.parse_args()
    codes: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    lock = threading.Lock()
    body = args.body.encode()

    def one() -> None:
        req = urllib.request.Request(args.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                code = resp.status
                version = str(json.loads(resp.read() or b"{}").get("model_version", "?"))
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (urllib.error.URLError, OSError, ValueError):
            code = 0
        with lock:
            codes[code] += 1
            if code == 200:
                versions[version] += 1

    def stop(_signum: int, _frame: object) -> None:
        """Deleted (SIGTERM): report and end now. As a container's PID 1 it would otherwise ignore the
        signal and go on sending for the whole grace period."""
        with lock:
            print(report(sent, codes, versions, done=True), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    start = time.monotonic()
    sent, last_report = 0, start
    while time.monotonic() - start < args.duration and sent < args.requests:
        threading.Thread(target=one, daemon=True).start()
        sent += 1
        now = time.monotonic()
        if now - last_report >= 5:
            with lock:
                print(report(sent, codes, versions), flush=True)
            last_report = now
        time.sleep(max(0.0, start + sent / args.rps - time.monotonic()))
    time.sleep(5)
    print(report(sent, codes, versions, done=True), flush=True)


if __name__ == "__main__":
    main()
