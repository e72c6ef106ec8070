"""KWOK stages that make pods of chosen images fail the way a real kubelet reports it (issue 19).

Pods of NEVER_PULLS_IMAGE stay Pending with the container waiting in ImagePullBackOff; pods of
CRASH_LOOP_IMAGE run with the container waiting in CrashLoopBackOff after 3 restarts (last exit: Error,
code 1). The reasons and messages are the kubelet's own strings, so the operator is tested on what it
would read from a real node. The stock pod-ready stage skips these images (controlplane._kwok_stages).

Hook Jobs (issue 20): the stock pod-complete stage makes every Job pod succeed; pods of HOOK_FAILS_IMAGE
fail instead and pods of HOOK_RUNS_IMAGE keep running (pod-complete skips both). Test facilities only.
"""

from __future__ import annotations

from typing import Any

NEVER_PULLS_IMAGE = "tollgate.test/never-pulls:v1"
HOOK_FAILS_IMAGE = "tollgate.test/hook-fails:v1"
"""A test facility, not product behaviour: a Job pod of this image runs, then fails (exit code 1), so a
hook Job fails as a real smoke test would (the stock pod-complete stage makes every other Job pod
succeed)."""
HOOK_RUNS_IMAGE = "tollgate.test/hook-runs:v1"
"""A test facility: a Job pod of this image keeps running (a load generator); the simulator serves
requests to the canary for every such pod of a duringAnalysis hook (simulator.LOAD_RATE_ANNOTATION)."""
HOOK_IMAGES = (HOOK_FAILS_IMAGE, HOOK_RUNS_IMAGE)
CRASH_LOOP_IMAGE = "tollgate.test/crash-loop:v1"
FAULT_IMAGES = (NEVER_PULLS_IMAGE, CRASH_LOOP_IMAGE)

_CONDITIONS = """
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodScheduled
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "False"
  reason: ContainersNotReady
  type: ContainersReady
"""

_PULL = """{{ $now := Now }}
""" + _CONDITIONS + """
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
      reason: ImagePullBackOff
      message: {{ printf "Back-off pulling image %q" .image | Quote }}
{{ end }}
phase: Pending
"""

_CRASH = """{{ $now := Now }}
""" + _CONDITIONS + """
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 3
  started: false
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: {{ printf "back-off 40s restarting failed container=%s" .name | Quote }}
{{ end }}
phase: Running
startTime: {{ $now | Quote }}
"""


_HOOK_FAIL = """{{ $now := Now }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: 1
      reason: Error
      message: "smoke test failed (kwok stage tollgate-hook-fails)"
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
phase: Failed
"""


def hook_fail_stage() -> dict[str, Any]:
    """Running Job pods of HOOK_FAILS_IMAGE fail with exit code 1."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "tollgate-hook-fails"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
                {"key": ".spec.containers.[].image", "operator": "In", "values": [HOOK_FAILS_IMAGE]},
            ]},
            "next": {"statusTemplate": _HOOK_FAIL},
        },
    }


def _stage(name: str, image: str, reason: str, template: str) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".spec.containers.[].image", "operator": "In", "values": [image]},
                {"key": ".status.containerStatuses.[].state.waiting.reason", "operator": "NotIn",
                 "values": [reason]},
            ]},
            "next": {"statusTemplate": template},
        },
    }


def fault_stages() -> list[dict[str, Any]]:
    """The Stage objects kwok loads with --config."""
    return [
        _stage("tollgate-image-pull-backoff", NEVER_PULLS_IMAGE, "ImagePullBackOff", _PULL),
        _stage("tollgate-crash-loop", CRASH_LOOP_IMAGE, "CrashLoopBackOff", _CRASH),
        hook_fail_stage(),
    ]
