"""Regenerates the results table of bench/README.md from bench/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import BENCH_DIR, RESULTS

START, END = "<!-- results:start -->", "<!-- results:end -->"

# (result file, figure, label)
ROWS = (
    ("rollback_latency", "p50_s", "Rollback latency p50 (s)"),
    ("rollback_latency", "p95_s", "Rollback latency p95 (s)"),
    ("never_ready", "max_after_deadline_s", "Never-ready: rollback after the deadline, worst run (s)"),
    ("prometheus_queries", "queries_per_batch", "Prometheus queries per analysis batch (50 canaries, I=1s)"),
    ("prometheus_queries", "queries_per_tick", "Prometheus queries per analysis interval (50 canaries, I=1s)"),
    ("prometheus_queries_I5s", "queries_per_tick", "Prometheus queries per analysis interval (50 canaries, I=5s)"),
    ("bulk", "ratio", "Bulk create until Ready, operator / baseline"),
    ("bulk_pairs", "ratio_median", "Bulk create until Ready, median of interleaved pairs (bulk_pairs)"),
    ("memory", "marginal_kb_per_md", "Memory per ModelDeployment at the margin (KB)"),
    ("memory", "rss_1000_mb", "Operator RSS at 1,000 (MB)"),
    ("api_load", "requests_per_idle_md_per_hour", "API requests per idle ModelDeployment per hour"),
    ("api_load", "writes_on_identical_reapply", "Writes on an identical re-apply"),
    ("restart", "writes_for_unchanged", "Restart: writes for unchanged ModelDeployments"),
    ("restart", "acts_s", "Restart: time until it acts (s)"),
    ("bulk_10k", "ratio", "10,000: bulk create until Ready, operator / baseline"),
    ("memory_10k", "rss_10000_mb", "10,000: operator RSS settled (MB)"),
    ("memory_10k", "rss_peak_during_bulk_mb", "10,000: operator RSS peak during the create (MB)"),
    ("api_load_10k", "requests_per_idle_md_per_hour", "10,000: API requests per idle ModelDeployment per hour"),
    ("restart_10k", "acts_s", "10,000: restart, time until it acts (s)"),
    ("restart_10k", "all_decided_once_s", "10,000: restart, all decided once after (s)"),
    ("restart_10k", "writes_for_unchanged", "10,000: restart, writes for unchanged ModelDeployments"),
    ("restart_10k", "rss_after_restart_mb", "10,000: RSS after the restart, all decided once (MB; target 600)"),
    ("verdicts", "healthy_rollbacks_thin_tollgate", "Healthy canaries rolled back, of 25 thin (Tollgate)"),
    ("verdicts", "healthy_rollbacks_heavy_tollgate", "Healthy canaries rolled back, of 25 heavy (Tollgate)"),
    ("verdicts", "healthy_rollbacks_thin_tier", "Healthy canaries rolled back at the medium tier's limit, of 25 thin"),
    ("verdicts", "healthy_rollbacks_heavy_tier",
     "Healthy canaries rolled back at the medium tier's limit, of 25 heavy"),
    ("verdicts", "healthy_slow_rollbacks_thin_tier",
     "Healthy canaries with p99 just under the medium tier's max rolled back, of 25 thin"),
    ("verdicts", "healthy_slow_rollbacks_heavy_tier",
     "Healthy canaries with p99 just under the medium tier's max rolled back, of 25 heavy"),
    ("verdicts", "healthy_rollbacks_thin_raw", "Healthy canaries rolled back, of 25 thin (raw rule)"),
    ("verdicts", "healthy_rollbacks_heavy_raw", "Healthy canaries rolled back, of 25 heavy (raw rule)"),
    ("verdicts", "detected_errors+2pp_heavy_tollgate", "Errors +2 pp detected, heavy traffic (Tollgate)"),
    ("verdicts", "ttd_p50_errors+2pp_heavy_tollgate", "Errors +2 pp: time to detect p50, heavy (s, Tollgate)"),
    ("verdicts", "detected_errors+2pp_heavy_raw-wide", "Errors +2 pp detected, heavy traffic (raw, 2 pp margin)"),
    ("verdicts", "ttd_p50_p99+20%_heavy_tollgate", "p99 +20%: time to detect p50, heavy (s, Tollgate)"),
    ("verdicts", "ttd_p50_p99+20%_heavy_raw", "p99 +20%: time to detect p50, heavy (s, raw rule)"),
    ("flagger_peer", "tollgate_apply_to_zero_p50_s", "Peer: apply of a faulty version to weight 0, p50 (s, Tollgate)"),
    ("flagger_peer", "tollgate_apply_to_zero_p95_s", "Peer: apply to weight 0, p95 (s, Tollgate)"),
    ("flagger_peer", "flagger_apply_to_zero_p50_s", "Peer: apply to weight 0, p50 (s, Flagger v1.41.0)"),
    ("flagger_peer", "flagger_apply_to_zero_p95_s", "Peer: apply to weight 0, p95 (s, Flagger v1.41.0)"),
    ("flagger_peer", "ratio_apply_to_zero_p50", "Peer: apply to weight 0, Flagger / Tollgate (p50)"),
    ("flagger_peer", "tollgate_positive_to_zero_p50_s", "Peer: weight > 0 to weight 0, p50 (s, Tollgate)"),
    ("flagger_peer", "flagger_positive_to_zero_p50_s", "Peer: weight > 0 to weight 0, p50 (s, Flagger)"),
    ("flagger_peer", "tollgate_idle_requests_per_object_per_minute",
     "Peer: idle API requests per settled object per minute (Tollgate)"),
    ("flagger_peer", "flagger_idle_requests_per_object_per_minute",
     "Peer: idle API requests per settled object per minute (Flagger)"),
    ("flagger_peer", "tollgate_healthy_thin_rolled_back", "Peer: healthy rolled back, thin traffic (Tollgate)"),
    ("flagger_peer", "tollgate_healthy_heavy_rolled_back", "Peer: healthy rolled back, heavy traffic (Tollgate)"),
    ("flagger_peer", "flagger_healthy_thin_rolled_back", "Peer: healthy rolled back, thin traffic (Flagger)"),
    ("flagger_peer", "flagger_healthy_heavy_rolled_back", "Peer: healthy rolled back, heavy traffic (Flagger)"),
)


def _load() -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(RESULTS.glob("*.json")):
        out[f.stem] = json.loads(f.read_text())
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "-" if v is None else str(v)


def table() -> str:
    data = _load()
    lines = ["| Figure | Latest | Target | Met | Sizes, parameters |", "|---|---|---|---|---|"]
    for name, wanted, label in ROWS:
        key = wanted
        r = data.get(name)
        if r is None:
            lines.append(f"| {label} | not run | | | |")
            continue
        fig = r["figures"].get(key)
        if fig is None:  # e.g. rss_1000_mb at other sizes
            matches = [k for k in r["figures"] if k.startswith(key.rsplit("_", 2)[0]) and k.endswith("_mb")]
            key = matches[-1] if matches else key
            fig = r["figures"].get(key)
        target = r["targets"].get(key, "")
        met = r["met"].get(key)
        p = r["params"]
        extra = ", ".join(f"{k}={p[k]}" for k in ("N", "S", "I", "canaries", "runs", "healthy") if k in p)
        lines.append(f"| {label} | {_fmt(fig)} | {target} | {'yes' if met else 'no' if met is not None else ''} "
                     f"| {r['sizes']}{', ' + extra if extra else ''} |")
    m = next(iter(data.values()), {}).get("machine", {})
    if m:
        lines.append("")
        lines.append(f"Machine: {m.get('nproc')} cores, {m.get('memory_gb')} GB, load average at start "
                     f"{m.get('loadavg_at_start')}, Python {m.get('python')}, kopf {m.get('kopf')}, "
                     f"commits {', '.join(sorted({r['machine'].get('git_commit', '?') for r in data.values()}))} "
                     "(each result file records its own).")
    return "\n".join(lines)


def write_readme(path: Path = BENCH_DIR / "README.md") -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{table()}\n{END}{tail}")
