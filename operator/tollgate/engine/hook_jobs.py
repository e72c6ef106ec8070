"""The desired objects of a rollout's hooks (pure): hook Jobs, the canary's own Service, their NetworkPolicies.

- A hook Job is named <name>-<hook>-<6 of the canary revision>, runs one pod (backoffLimit 0,
  restartPolicy Never) for at most the hook's timeout (activeDeadlineSeconds), under Pod Security
  `restricted` like the model (non-root, no privilege escalation, all capabilities dropped, seccomp
  RuntimeDefault, read-only root filesystem), with the sandbox's ServiceAccount and no token mounted.
- The Job carries the owner labels (its watch finds the ModelDeployment by them) and tollgate.dev/hook;
  its pod carries managed-by, tollgate.dev/hook and the model label only: not the ModelDeployment's
  selector labels, so the model's own NetworkPolicies (ingress from spec.sandbox.ingressFrom, egress to
  spec.sandbox.egressTo) do not apply to it, and no track Service selects it.
- NetworkPolicies: hook pods may reach the canary's pods on the model port (and DNS, like every pod of
  the sandbox); canary pods accept that. Nothing else is opened.
- The canary's own Service <name>-canary (the gatewayAPI router has it already; the replicas router gets
  it while hooks are configured) is what CANARY_URL points at.
"""

from __future__ import annotations

import math
from typing import Any

from tollgate.api import resource
from tollgate.api.hook_status import HookPhase, HookStatus
from tollgate.api.hooks import SYNTHETIC_HEADER, HookJob
from tollgate.api.spec import ModelDeploymentSpec, RouterKind
from tollgate.api.status import ModelDeploymentStatus
from tollgate.engine.actions import Context, ObjectRef
from tollgate.engine.dataplane import service_name
from tollgate.engine.labels import canary_selector, owner_labels, selector_labels
from tollgate.engine.naming import fit, short_hash
from tollgate.engine.observations import Track
from tollgate.engine.sandbox import NETWORKING_V1, sandbox_namespace, service_account_name
from tollgate.engine.timeutil import parse_duration
from tollgate.engine.workloads import restricted_container, restricted_pod

Manifest = dict[str, Any]
LABEL_HOOK = "tollgate.dev/hook"
HOOK_CONTAINER = "hook"
HOOK_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}


def job_name(spec: ModelDeploymentSpec, ctx: Context, hook: str, revision: str) -> str:
    """<name>-<hook>-<hash of everything the Job renders>: a Job's template cannot change, so a changed
    hook spec (or a new canary revision) is a new Job, never an update the API server would refuse."""
    job = spec.hooks.job(hook)
    rendered = job.model_dump_json() if job is not None else ""
    digest = short_hash(revision, hook, rendered, canary_url(spec, ctx), spec.model.name, SYNTHETIC_HEADER,
                        length=8)
    return fit(f"{ctx.name}-{hook.lower()}-{digest}")


def job_ref(namespace: str, name: str) -> ObjectRef:
    return ObjectRef("batch/v1", "Job", name, namespace)


def canary_url(spec: ModelDeploymentSpec, ctx: Context) -> str:
    return f"http://{service_name(ctx, Track.CANARY)}.{sandbox_namespace(spec, ctx)}:{spec.runtime.port}"


def hook_job(spec: ModelDeploymentSpec, ctx: Context, entry: HookStatus, hook: HookJob) -> Manifest:
    """The Job of one hook run for the canary revision `entry.revision`."""
    assert entry.job is not None
    ns = sandbox_namespace(spec, ctx)
    labels = {**owner_labels(ctx, spec.model.name), LABEL_HOOK: entry.name, resource.LABEL_REVISION: entry.revision}
    pod_labels = {resource.LABEL_MANAGED_BY: resource.MANAGED_BY_VALUE, resource.LABEL_MODEL: fit(spec.model.name),
                  LABEL_HOOK: entry.name}
    ours = [
        {"name": "CANARY_URL", "value": canary_url(spec, ctx)},
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "TOLLGATE_REVISION", "value": entry.revision},
        {"name": "TOLLGATE_HOOK", "value": entry.name},
        # Every request the hook sends should carry this header, so the model server's metrics can tag it
        # and spec.hooks.syntheticTraffic can leave it out of the SLOs.
        {"name": "TOLLGATE_SYNTHETIC_HEADER", "value": SYNTHETIC_HEADER},
        {"name": "TOLLGATE_SYNTHETIC_VALUE", "value": entry.name},
    ]
    reserved = {e["name"] for e in ours}
    container: Manifest = {
        "name": HOOK_CONTAINER,
        "image": hook.image,
        "env": ours + [{"name": e.name, "value": e.value} for e in hook.env if e.name not in reserved],
        "resources": {k: dict(v) for k, v in HOOK_RESOURCES.items()},
        "securityContext": restricted_container(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if hook.command:
        container["command"] = list(hook.command)
    if hook.args:
        container["args"] = list(hook.args)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": entry.job, "namespace": ns, "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": max(1, math.ceil(parse_duration(hook.timeout))),
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": service_account_name(ctx),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod(fs_group=False),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def wanted_jobs(spec: ModelDeploymentSpec, ctx: Context, st: ModelDeploymentStatus) -> list[HookStatus]:
    """The hook runs whose Job should exist: every finished one of the latest canary (kept, so their logs
    can be read, until the next canary starts) and the running ones of the canary still running. A
    duringAnalysis Job stops when promotion starts; nothing runs for a canary that ended."""
    out = []
    for entry in st.hooks:
        if entry.phase is HookPhase.STOPPED:
            continue
        if entry.job is None or entry.job != job_name(spec, ctx, entry.name, entry.revision):
            continue  # no such hook any more, or its spec changed: that Job goes (its result stays)
        running_canary = st.canary is not None and st.canary.revision == entry.revision
        if st.canary is not None and not running_canary:
            continue  # a newer canary: the previous one's Jobs go
        if entry.phase is HookPhase.RUNNING and (
                not running_canary or (entry.name == "duringAnalysis" and st.promotingSince is not None)):
            continue
        out.append(entry)
    return out


def hook_objects(spec: ModelDeploymentSpec, ctx: Context, st: ModelDeploymentStatus) -> list[Manifest]:
    """NetworkPolicies and the canary Service while hooks are configured, then the wanted Jobs."""
    if not spec.hooks.has_jobs:
        return []
    ns = sandbox_namespace(spec, ctx)
    labels = owner_labels(ctx, spec.model.name)
    port = spec.runtime.port
    hook_pods = {"matchExpressions": [{"key": LABEL_HOOK, "operator": "Exists"}]}
    canary_pods = {"matchLabels": selector_labels(ctx, Track.CANARY.value)}
    out: list[Manifest] = [
        {"apiVersion": NETWORKING_V1, "kind": "NetworkPolicy",
         "metadata": {"name": "allow-hooks-to-canary", "namespace": ns, "labels": dict(labels)},
         "spec": {"podSelector": canary_pods, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"podSelector": hook_pods}], "ports": [{"protocol": "TCP", "port": port}]}]}},
        {"apiVersion": NETWORKING_V1, "kind": "NetworkPolicy",
         "metadata": {"name": "allow-hook-egress", "namespace": ns, "labels": dict(labels)},
         "spec": {"podSelector": hook_pods, "policyTypes": ["Egress"],
                  "egress": [{"to": [{"podSelector": canary_pods}], "ports": [{"protocol": "TCP", "port": port}]}]}},
    ]
    if spec.traffic.router is not RouterKind.GATEWAY_API:
        out.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service_name(ctx, Track.CANARY), "namespace": ns, "labels": dict(labels)},
            "spec": {"selector": canary_selector(ctx, kept_only=st.keptCanary is not None and st.canary is None),
                     "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]},
        })
    for entry in wanted_jobs(spec, ctx, st):
        hook = spec.hooks.job(entry.name)
        assert hook is not None
        out.append(hook_job(spec, ctx, entry, hook))
    return out

