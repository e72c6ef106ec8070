"""What a notification says, and its shape for each receiver: pure functions, no I/O.

A notification is derived from a Kubernetes Event the operator posts (its reason), so every message a
person receives was also recorded on the ModelDeployment. Kinds (the issue's list):

  rollback    RolledBack, Aborted (a canary, or a version in its bake window), DrillRolledBack (a rollback
              drill: rehearsing the escape route includes the message someone is woken by)
  stall       ProgressDeadlineExceeded, SpecInvalid, DecisionFailed
  approval    AwaitingApproval (a step waits for tollgate.dev/approve)
  promotion   Promoted, BakeCompleted
  killswitch  KillSwitchOn, KillSwitchOff

Formats: `cloudevents` (a CloudEvents 1.0 JSON event in structured mode, for a generic webhook),
`slack` (an incoming-webhook message) and `teams` (a Microsoft Teams incoming-webhook MessageCard).
Each carries a link to the evidence when there is one: the ConfigMap and the command that shows it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tollgate.api import resource


class Kind(StrEnum):
    ROLLBACK = "rollback"
    STALL = "stall"
    APPROVAL = "approval"
    PROMOTION = "promotion"
    KILL_SWITCH = "killswitch"


class Format(StrEnum):
    CLOUDEVENTS = "cloudevents"
    SLACK = "slack"
    TEAMS = "teams"


KINDS: dict[str, Kind] = {
    "RolledBack": Kind.ROLLBACK, "Aborted": Kind.ROLLBACK, "DrillRolledBack": Kind.ROLLBACK,
    "ProgressDeadlineExceeded": Kind.STALL, "SpecInvalid": Kind.STALL, "DecisionFailed": Kind.STALL,
    "AwaitingApproval": Kind.APPROVAL,
    "Promoted": Kind.PROMOTION, "BakeCompleted": Kind.PROMOTION,
    "KillSwitchOn": Kind.KILL_SWITCH, "KillSwitchOff": Kind.KILL_SWITCH,
}
"""Event reason -> notification kind; other reasons notify nobody."""

CLOUDEVENT_TYPE = "dev.tollgate.modeldeployment.{kind}"
CONTENT_TYPES = {Format.CLOUDEVENTS: "application/cloudevents+json", Format.SLACK: "application/json",
                 Format.TEAMS: "application/json"}
_EVIDENCE = re.compile(r"evidence (\S+?)[;,.]?$")


@dataclass(frozen=True)
class Notice:
    """One notification, before it is shaped for a receiver."""

    kind: Kind
    namespace: str
    name: str
    uid: str
    reason: str
    message: str
    warning: bool
    at: str
    """When the operator posted the Event (RFC 3339)."""
    stable: str | None = None
    canary: str | None = None
    incident: str | None = None
    """The evidence ConfigMap (in the ModelDeployment's namespace), when the message names one."""

    @property
    def id(self) -> str:
        """Stable for the same Event: a retry is recognisable as the same notification."""
        return hashlib.sha256(f"{self.uid}|{self.reason}|{self.at}|{self.message}".encode()).hexdigest()[:32]

    @property
    def evidence(self) -> dict[str, str] | None:
        if self.incident is None:
            return None
        return {"configMap": f"{self.namespace}/{self.incident}", "key": "evidence.json",
                "command": f"kubectl tollgate evidence {self.name} -n {self.namespace}"}


def notice_of(body: Mapping[str, Any], reason: str, message: str, warning: bool, at: str) -> Notice | None:
    """The notification an Event on `body` (the ModelDeployment) stands for, or None."""
    kind = KINDS.get(reason)
    if kind is None:
        return None
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    match = _EVIDENCE.search(message)
    return Notice(kind=kind, namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
                  uid=str(meta.get("uid", "")), reason=reason, message=message, warning=warning, at=at,
                  stable=(status.get("stable") or {}).get("version"),
                  canary=(status.get("canary") or {}).get("version"),
                  incident=match.group(1) if match else None)


def cloudevent(n: Notice) -> dict[str, Any]:
    """A CloudEvents 1.0 event, structured mode (Content-Type application/cloudevents+json)."""
    return {
        "specversion": "1.0",
        "id": n.id,
        "source": f"/apis/{resource.API_VERSION}/namespaces/{n.namespace}/modeldeployments/{n.name}",
        "type": CLOUDEVENT_TYPE.format(kind=n.kind.value),
        "subject": f"{n.namespace}/{n.name}",
        "time": n.at,
        "datacontenttype": "application/json",
        "data": {
            "kind": n.kind.value, "namespace": n.namespace, "name": n.name, "reason": n.reason,
            "message": n.message, "severity": "warning" if n.warning else "info",
            "stableVersion": n.stable, "canaryVersion": n.canary, "evidence": n.evidence,
        },
    }


def _line(n: Notice) -> str:
    tail = f" Evidence: {n.evidence['configMap']} (`{n.evidence['command']}`)" if n.evidence else ""
    return f"[{n.kind.value}] {n.namespace}/{n.name} {n.reason}: {n.message}.{tail}"


def slack(n: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the fallback) and one section block."""
    text = _line(n)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def teams(n: Notice) -> dict[str, Any]:
    """A Microsoft Teams incoming-webhook MessageCard."""
    facts = [{"name": "ModelDeployment", "value": f"{n.namespace}/{n.name}"}, {"name": "Reason", "value": n.reason}]
    if n.evidence:
        facts.append({"name": "Evidence", "value": f"{n.evidence['configMap']} ({n.evidence['command']})"})
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": _line(n)[:200],
            "themeColor": "D70000" if n.warning else "0076D7",
            "title": f"Tollgate {n.kind.value}: {n.namespace}/{n.name}",
            "sections": [{"text": n.message, "facts": facts}]}


def payload(fmt: Format, n: Notice) -> dict[str, Any]:
    return {Format.CLOUDEVENTS: cloudevent, Format.SLACK: slack, Format.TEAMS: teams}[fmt](n)
