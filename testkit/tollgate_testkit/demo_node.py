"""`REAL_NODE=1 make demo`: the same story as `make demo`, with real pods and real requests.

Tollgate runs as it ships (its image built from our Dockerfile, installed by the chart, two replicas
with Lease election, in the traefik dialect) on the machine's real node (tollgate_testkit.shipped). Model
servers are MLServer pods serving scikit-learn models; a load generator pod POSTs inference requests to
the Gateway, where Traefik routes them by the ModelDeployment's HTTPRoute; Prometheus scrapes the pods it
discovers, and each step is judged on what the pods served. Every rollout starts with a shadow step: all
live requests are copied to the new version and judged there, while users get stable's answers only.
1.1.0 is a healthy model; 4.0.0 answers every request but its scores are shifted, so it must be rolled
back in the shadow step with no user ever getting one of its answers (the load generator counts the
model_version of every answer it got). Needs root; everything started is stopped on exit.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import yaml

from tollgate.engine.sandbox import default_sandbox_namespace
from tollgate_testkit import gateway, shipped
from tollgate_testkit.demo import View, follow, settled_on, summary

NAMESPACE = "ml-demo"
NAME = "iris"
ROLLOUT_TIMEOUT = 420.0
"""A real rollout waits for images to start, MLServer to load its model and pods to turn Ready."""


def manifest(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "model": {"name": shipped.MODEL, "version": version, "uri": shipped.URIS[version]},
            "runtime": shipped.RUNTIME,
            "metrics": shipped.METRICS,
            "replicas": 1,
            "traffic": {"router": "gatewayAPI", "gatewayAPI": {"parentRefs": [
                {"name": gateway.GATEWAY_NAME, "namespace": gateway.NAMESPACE}]}},
            # Traefik's pod sends each request to a model pod's IP
            "sandbox": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": gateway.NAMESPACE}}}]},
            "rollout": {
                "steps": [{"shadow": {"percent": 100}}, {"weight": 50}, {"weight": 100}],
                "analysis": {"interval": "2s", "window": "10s", "minSamples": 20, "failureLimit": 0,
                             "consecutiveErrorLimit": 5},
                "progressDeadline": "180s",
            },
            "slos": [
                {"name": "error-rate", "max": 0.05, "maxIncreaseOverBaseline": 0.03, "maxNoDataDuration": "60s"},
                {"name": "latency-p99", "max": 5.0, "maxNoDataDuration": "60s"},
                {"name": "score-shift", "max": 0.1, "maxNoDataDuration": "60s"},
            ],
        },
    }


def served_lines(stack: shipped.ShippedStack, track: str) -> tuple[str, int, list[str]]:
    """A pod of `track`, how many inference requests its own log shows it answered, its container IDs."""
    sandbox = default_sandbox_namespace(NAMESPACE, NAME)
    pods = yaml.safe_load(stack.kubectl("get", "pods", "-n", sandbox, "-l", f"tollgate.dev/track={track}",
                                        "-o", "json").stdout)["items"]
    if not pods:
        return "-", 0, []
    pod = pods[0]
    logs = str(stack.kubectl("logs", pod["metadata"]["name"], "-n", sandbox, check=False).stdout)
    ids = [c.get("containerID", "") for c in pod["status"].get("containerStatuses", [])]
    return pod["metadata"]["name"], logs.count(f"POST /v2/models/{shipped.MODEL}/infer"), ids


def main(view: View) -> int:
    say = print
    t0 = time.monotonic()
    say("Tollgate demo on the real node: the control plane, a real kubelet with containerd, the images, "
        "Prometheus and the operator installed by its chart (several minutes the first time)...")
    try:
        stack = shipped.up()
    except (RuntimeError, subprocess.CalledProcessError) as exc:  # node.NodeUnavailableError names what is missing
        say(f"cannot start the real node: {exc}")
        return 2
    try:
        say(f"  ready in {time.monotonic() - t0:.0f}s (kubeconfig: {stack.kubeconfig})")
        stack.kubectl("create", "namespace", NAMESPACE)

        say("\n1) First deployment of 1.0.0 (MLServer, scikit-learn), then real requests through the Gateway "
            f"({stack.data_plane.url}, Traefik {stack.data_plane.version}).")
        stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest("1.0.0")))
        follow(stack, view, settled_on("1.0.0"), namespace=NAMESPACE, name=NAME, timeout=ROLLOUT_TIMEOUT)
        load = stack.start_load(NAMESPACE, NAME, shipped.MODEL, int(shipped.RUNTIME["port"]), through_gateway=True)

        say("\n2) Rolling out 1.1.0 (healthy): shadow (every request copied to it, users answered by 1.0.0) "
            "-> 50% -> 100%, each step judged on what the pods served.")
        stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest("1.1.0")))
        md = follow(stack, view, settled_on("1.1.0"), namespace=NAMESPACE, name=NAME, timeout=ROLLOUT_TIMEOUT)
        ok = (md["status"].get("stable") or {}).get("version") == "1.1.0"
        say(f"   -> {'promoted' if ok else 'NOT promoted'}: stable is now "
            f"{(md['status'].get('stable') or {}).get('version')}")
        before = stack.answered_versions(load)

        say("\n3) Rolling out 4.0.0, a model whose scores are shifted (HTTP 200, valid outputs, wrong answers): "
            "its shadow step must roll it back before any user gets one of its answers.")
        stack.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest("4.0.0")))
        md = follow(stack, view, settled_on("4.0.0"), namespace=NAMESPACE, name=NAME, timeout=ROLLOUT_TIMEOUT)
        st = md["status"]
        rolled_back = st.get("phase") == "RolledBack" and (st.get("stable") or {}).get("version") == "1.1.0"
        say(f"   -> phase {st.get('phase')}, canary weight {st.get('canaryWeight')}%, "
            f"stable still {(st.get('stable') or {}).get('version')}")
        time.sleep(6)  # the load generator reports every 5 s
        after = stack.answered_versions(load)
        from_shifted = after.get("4.0.0", 0) - before.get("4.0.0", 0)
        say(f"   -> answers the clients got, by model version: {after} ({from_shifted} from 4.0.0)")
        stack.stop_load(load)

        pod, served, ids = served_lines(stack, "stable")
        say(f"\nReal pods: stable pod {pod} answered {served} inference requests (kubectl logs); "
            f"containers {', '.join(ids) or '-'}")
        incident = summary(stack, NAMESPACE, st, say)
        success = ok and rolled_back and from_shifted == 0 and bool(incident) and served > 0
        say(f"\nDemo {'complete' if success else 'FAILED'} in {time.monotonic() - t0:.0f}s; cleaning up.")
        return 0 if success else 1
    except KeyboardInterrupt:
        say("\ninterrupted; everything started is being stopped.")
        return 130
    finally:
        stack.down()
