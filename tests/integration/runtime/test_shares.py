"""Honest shares on the real control plane (issue 19): the 2-replica 10% step is reported as 50%."""

from __future__ import annotations

import json
from typing import Any

from integration.runtime.helpers import apply, condition, md_manifest, status
from tollgate_testkit.stack import OperatorProcess, Stack, wait_for


def test_two_replica_ten_percent_step_is_reported_as_fifty_percent(stack: Stack, namespace: str,
                                                                   operator: OperatorProcess) -> None:
    # given 2 replicas and a 10% first step on the replicas router, deployed as stable
    steps = [{"weight": 10}, {"weight": 50}, {"weight": 100}]
    apply(stack, namespace, md_manifest("share", "1.0.0", replicas=2,
                                        rollout={"steps": steps, "progressDeadline": "60s"}))
    wait_for("stable", lambda: status(stack, namespace, "share").get("phase") == "Stable", timeout=90)
    # when a new version starts its canary and enters the 10% step
    apply(stack, namespace, md_manifest("share", "1.1.0", replicas=2,
                                        rollout={"steps": steps, "progressDeadline": "60s"}))

    def at_first_step() -> dict | None:  # type: ignore[type-arg]
        # Measured from Ready pods: right after the weight is set, stable may still have 2 Ready pods
        # (1 canary of 3: 33.3%) until the router's scale-down lands; then 1 of 2.
        st = status(stack, namespace, "share")
        return st if st.get("canaryWeight") == 10 and st.get("canaryShare") == 50.0 else None

    st = wait_for("canary at 10% settled", at_first_step, timeout=90)
    # then status says the 10% step really sends 50% of the requests to the canary (1 pod of 2 Ready)
    assert st["canaryShare"] == 50.0
    assert st["steps"][0] == {"weight": 10, "plannedShare": 50.0, "canaryPods": 1, "stablePods": 1,
                              "share": 50.0}
    # and a warning condition says so, with the fix
    assert condition(st, "ShareWithinTolerance") == "False"
    message = next(c["message"] for c in st["conditions"] if c["type"] == "ShareWithinTolerance")
    assert "step 1/3 asks 10% but gets 50.0% (1 canary of 2 pods)" in message
    assert "set spec.replicas to 8 or more" in message
    # and a Warning Event on the ModelDeployment carries the same message
    # (posted after the status write it reports: polled)
    def out_of_tolerance() -> list[dict[str, Any]]:
        events = json.loads(stack.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return [e for e in events
                if e.get("reason") == "ShareOutOfTolerance" and e["involvedObject"]["name"] == "share"]

    warned = wait_for("the ShareOutOfTolerance Event", out_of_tolerance, timeout=30)
    assert warned and warned[0]["type"] == "Warning" and warned[0]["message"] == message
