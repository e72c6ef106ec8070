"""Static checks of the chart that need no tool: CRDs in sync, values valid, settings wired."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from tollgate.runtime import config

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "tollgate"


def test_chart_crds_equal_the_generated_crds() -> None:
    # given crds/ (generated from the pydantic models) and the chart's copy
    ours = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    # then the same files with the same bytes: `cp crds/*.yaml charts/tollgate/crds/` after `make crds`
    assert ours == chart
    for name in ours:
        assert (CHART / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), name


def test_default_values_satisfy_the_values_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.validate(values, schema)
    # and every top-level value is described by the schema (additionalProperties is false)
    assert set(values) <= set(schema["properties"])


def test_every_env_var_the_chart_sets_is_read_by_the_operator() -> None:
    # given the TOLLGATE_* names in the Deployment template
    template = (CHART / "templates" / "deployment.yaml").read_text()
    chart_vars = set(re.findall(r"name: (TOLLGATE_\w+)", template))
    # and the names the operator's settings read (config.py's parser help lists each in brackets)
    help_text = config.parser().format_help()
    read = set(re.findall(r"TOLLGATE_\w+", help_text))
    # then the chart sets only settings that exist, and sets the leader-election and port ones
    assert chart_vars <= read, chart_vars - read
    assert {"TOLLGATE_LEASE_NAMESPACE", "TOLLGATE_LEASE_NAME", "TOLLGATE_METRICS_PORT", "TOLLGATE_HEALTH_PORT",
            "TOLLGATE_HEALTH_GRACE"} <= chart_vars
    assert "fieldPath: metadata.name" in template and "fieldPath: metadata.namespace" in template


def test_the_chart_podmonitor_relabels_exactly_as_the_shipped_scrape_config() -> None:
    # given the plain scrape config documented for Prometheus and the chart's PodMonitor
    (job,) = yaml.safe_load((REPO / "deploy" / "prometheus" / "scrape-config.yaml").read_text())
    template = (CHART / "templates" / "podmonitor.yaml").read_text()
    block = template[template.index("      relabelings:\n"):template.rindex("{{- end }}")]
    relabelings = yaml.safe_load(block)["relabelings"]
    # then the PodMonitor's rules are the scrape config's, in camelCase, after the rule that keeps the
    # container port named http (the PodMonitor says `port: http` instead)
    keep_http, *rest = job["relabel_configs"]
    assert keep_http == {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": "http",
                         "action": "keep"}
    camel = [{{"source_labels": "sourceLabels", "target_label": "targetLabel"}.get(k, k): v for k, v in r.items()}
             for r in rest]
    assert relabelings == camel
    assert "port: http" in template and "app.kubernetes.io/managed-by: tollgate" in template
    assert job["kubernetes_sd_configs"][0]["selectors"][0]["label"] == "app.kubernetes.io/managed-by=tollgate"


def test_the_trusted_approvals_policy_guards_every_control_token() -> None:
    """A control whose annotation the policy does not list could be set in anyone's name, and the operator
    would record that name as who acted (approvedBy, actedBy, lastDrill.requestedBy)."""
    from tollgate.api.controls import CONTROLS, annotation

    # given the annotations the trusted-approvals policy checks
    template = (CHART / "templates" / "admission-approvals.yaml").read_text()
    listed = set(re.findall(r"'(tollgate\.dev/[a-z-]+)'", template))
    # then every control's annotation is among them
    assert {annotation(c) for c in CONTROLS} <= listed, sorted({annotation(c) for c in CONTROLS} - listed)
