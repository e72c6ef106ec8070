"""`make bench`: every benchmark on the local control plane; results in bench/results/*.json.

    python bench/run.py                 # full sizes (what the README reports)
    python bench/run.py --quick         # small sizes, for developing the benchmarks
    BENCH_SCALE=0.1 python bench/run.py # full sizes scaled down
    python bench/run.py --only rollback_latency,never_ready

Benchmarks: rollback_latency, never_ready, prometheus_queries (control plane A, with Prometheus
scraping the traffic simulator), bulk (with its baseline), memory, api_load, restart (fresh control
planes B and C), verdicts (false rollbacks and detection of the verdict rules on the simulator's
traffic; no cluster), bulk_pairs (the bulk's two sides again, interleaved, --bulk-pairs times: the
median ratio, since one pair moves with the machine), flagger_peer (Flagger v1.41.0 beside the
operator on a fresh control plane D; it prints its expected duration at its start: about 25 min at full
size). The README table is regenerated from whatever result files exist.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import flagger_peer
import latency
import report
import scale
import verdicts
from common import FULL, QUICK, Result, api_client, log, machine, scaled

from tollgate_testkit import controlplane
from tollgate_testkit.stack import running_stack

LATENCY = ("rollback_latency", "never_ready", "prometheus_queries")
SCALE = ("bulk", "memory", "api_load", "restart")
REPEATED = ("bulk_pairs",)
VERDICTS = ("verdicts",)
PEER = ("flagger_peer",)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (N=20, 5 rollback runs)")
    p.add_argument("--only", default="", help="comma-separated benchmark names")
    p.add_argument("--scrape-interval", type=float, default=None, help="S in seconds (default 1)")
    p.add_argument("--analysis-interval", type=float, default=None, help="I in seconds (default 1)")
    p.add_argument("--peer-runs", type=int, default=None, help="flagger_peer: fault runs per side (default 20)")
    p.add_argument("--bulk-pairs", type=int, default=3, help="bulk_pairs: loader/operator pairs (default 3)")
    a = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the control planes, Prometheus and operators started here stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = QUICK if a.quick else FULL
    if os.environ.get("BENCH_SCALE"):
        sizes = scaled(FULL, float(os.environ["BENCH_SCALE"]))
    from dataclasses import replace

    if a.scrape_interval:
        sizes = replace(sizes, scrape_interval=a.scrape_interval)
    if a.analysis_interval:
        sizes = replace(sizes, analysis_interval=a.analysis_interval)
    if a.peer_runs:
        sizes = replace(sizes, peer_runs=a.peer_runs)
    only = set(filter(None, a.only.split(","))) or set(LATENCY + SCALE + VERDICTS + PEER + REPEATED)
    if "verdicts" in only:
        log("running verdicts")
        verdicts.main(["--quick"] if a.quick else [])
    if not only & set(LATENCY + SCALE + PEER + REPEATED):
        if not os.environ.get("BENCH_RESULTS"):  # a development run leaves the table alone
            report.write_readme()
        return 0
    controlplane.build()
    facts = machine()
    params = {"sizes": sizes.name}
    log(f"sizes {sizes}")

    def finish(r: Result, started: float) -> None:
        r.machine = facts
        r.duration_s = round(time.monotonic() - started, 1)
        r.write()

    if only & set(LATENCY):
        directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
        with controlplane.running(directory) as state, running_stack(
                kubeconfig=str(state.kubeconfig), scrape_interval=sizes.scrape_interval,
                with_operator=True) as stack:
            api = api_client(stack.kubeconfig)
            for name in LATENCY:
                if name in only:
                    started = time.monotonic()
                    log(f"running {name}")
                    finish(getattr(latency, name)(stack, api, sizes, params), started)
    if only & set(SCALE):
        started = time.monotonic()
        base = None
        if "bulk" in only:
            log("running the bulk baseline")
            base = scale.baseline(sizes)
            log(f"baseline: {base}")
        for r in scale.operator_side(sizes, params, base, frozenset(only)):
            r.machine = facts
            r.duration_s = round(time.monotonic() - started, 1)
            r.write()
    if "bulk_pairs" in only:
        started = time.monotonic()
        log(f"running bulk_pairs ({a.bulk_pairs} pairs)")
        finish(scale.bulk_pairs(sizes, params, a.bulk_pairs), started)
    if "flagger_peer" in only:
        started = time.monotonic()
        log("running flagger_peer (its own control plane D)")
        directory = Path(tempfile.mkdtemp(prefix="tollgate-bench-peer-"))
        with controlplane.running(directory) as state, running_stack(
                kubeconfig=str(state.kubeconfig), scrape_interval=flagger_peer.SCRAPE_INTERVAL_S,
                with_operator=True, operator_args=flagger_peer.tollgate_operator_args()) as stack:
            finish(flagger_peer.run(stack, api_client(stack.kubeconfig), runs=sizes.peer_runs,
                                    healthy=sizes.peer_healthy, idle_window=sizes.peer_idle_window,
                                    sizes_name=sizes.name, params=params), started)
    if not os.environ.get("BENCH_RESULTS"):  # a development run leaves the table alone
        report.write_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
