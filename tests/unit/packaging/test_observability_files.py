"""The dashboard and alert rules query only metrics the operator defines (runtime/metrics.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import tollgate.runtime.metrics  # noqa: F401 - registers the operator's metrics

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "tollgate-dashboard.json"
ALERTS = REPO / "deploy" / "prometheus" / "tollgate-alerts.yaml"


def exposed_names() -> set[str]:
    """Every sample name the operator's registry exposes (counters' _total, histograms' _bucket...)."""
    names = set()
    for metric in REGISTRY.collect():
        if metric.name.startswith("tollgate_"):
            names.add(metric.name)
            suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum", "_created"]}
            names |= {metric.name + s for s in suffixes.get(metric.type, [])}
    return names


def queried(exprs: list[str]) -> set[str]:
    return {n for e in exprs for n in re.findall(r"\btollgate_[a-z_]+", e)}


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def test_dashboard_is_valid_and_queries_only_real_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"] and dash["title"]
    used = queried(dashboard_exprs())
    # then every metric it queries exists, and the headline ones are on it
    assert used <= exposed_names(), used - exposed_names()
    assert {"tollgate_canary_weight_percent", "tollgate_modeldeployment_phase", "tollgate_rollbacks_total",
            "tollgate_analysis_value", "tollgate_reconcile_duration_seconds_bucket"} <= used


def test_alert_rules_query_only_real_metrics() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    used = queried([r["expr"] for r in rules])
    assert used and used <= exposed_names(), used - exposed_names()
    assert {"TollgateRollback", "TollgateRolloutStuck"} <= {r["alert"] for r in rules}
