"""Hooks of a rollout: Kubernetes Jobs run in the sandbox at fixed points, and an HTTP confirmation gate.

- `preTraffic`: a Job run against the canary's own Service (<name>-canary) once the canary is Ready and
  before it gets any weight: a smoke test. The canary takes no request until it succeeded.
- `duringAnalysis`: a Job started when the canary first takes traffic and kept running while its steps
  are analysed (a load generator, so thin traffic still reaches minSamples); removed at promotion or
  rollback.
- `prePromotion`: a Job run after the last step passed, before the stable track moves to the canary.
- `confirmRollout`: an HTTP gate before the canary's first weight, after Flagger's `confirm-rollout`
  webhook: Tollgate POSTs a JSON payload naming the ModelDeployment and the canary; 200 lets it proceed,
  any other answer (or none) holds it and asks again every `interval`.

Each Job runs in the sandbox under Pod Security `restricted`, with the sandbox's ServiceAccount and no
token, reaching only the canary's pods (NetworkPolicy). A Job that fails or outlives its `timeout`
applies its `failurePolicy`: `rollback` (the canary is rolled back with evidence, like a failed
analysis) or `ignore` (recorded in status and history, the rollout goes on).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tollgate.api.validation import cel

_DURATION = r"^([0-9]{1,5}(\.[0-9]{1,9})?(ms|s|m|h))+$"
Duration = Annotated[str, StringConstraints(pattern=_DURATION, max_length=32)]
HOOK_ARG_MAX_ITEMS = 32
HOOK_ARG_MAX_LENGTH = 1024
HOOK_NAMES = ("preTraffic", "duringAnalysis", "prePromotion")
"""The Job hooks, in the order a rollout reaches them."""
CONFIRM_ROLLOUT = "confirmRollout"
"""The HTTP gate's name in status."""
HOOK_PODS = 2
"""Hook pods that can run at once (duringAnalysis beside prePromotion): room a derived quota adds."""
SYNTHETIC_HEADER = "X-Tollgate-Synthetic"
"""The HTTP header a hook Job's requests carry (value: the hook's name), so the model server's metrics can
label them as synthetic (see SyntheticTraffic); the Job gets it as TOLLGATE_SYNTHETIC_HEADER/_VALUE."""
SYNTHETIC_PROFILES = ("istio",)
"""Metric profiles whose series can carry the tag (tollgate.adapters.metric_profiles, `synthetic_label`): only
these admit syntheticTraffic: exclude; a unit test keeps the two equal."""
WEBHOOK_SECRET_DEFAULT = "tollgate-confirm-rollout"
"""The Secret name the chart lets the operator read by default (value hooks.webhookSecretNames)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, populate_by_name=True)


class HookFailurePolicy(StrEnum):
    """What a failed or timed-out hook does to the rollout."""

    ROLLBACK = "rollback"
    IGNORE = "ignore"


class SyntheticTraffic(StrEnum):
    """Whether the requests hook Jobs send (a duringAnalysis load generator, smoke tests) count in the SLOs."""

    INCLUDE = "include"
    EXCLUDE = "exclude"


class HookEnvVar(_Model):
    """An environment variable of the hook's container (literal value)."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    """Variable name, a C identifier."""
    value: Annotated[str, StringConstraints(max_length=1024)] = ""
    """Literal value (at most 1024 characters)."""


@cel(
    "duration(self.timeout) >= duration('1s') && duration(self.timeout) <= duration('6h')",
    "spec.hooks.<hook>.timeout must be between 1s and 6h: set e.g. 2m (a hook that outlives it counts as "
    "failed and its failurePolicy applies)",
    field_path=".timeout",
)
class HookJob(_Model):
    """A Job run in the sandbox (one pod, no retries), under the restricted Pod Security profile.

    Its container gets CANARY_URL (http://<name>-canary.<sandbox>:<port>), MODEL_NAME, TOLLGATE_REVISION
    (the canary revision), TOLLGATE_HOOK, and TOLLGATE_SYNTHETIC_HEADER / TOLLGATE_SYNTHETIC_VALUE (the
    header every request it sends should carry: X-Tollgate-Synthetic: <hook>); exit 0 is success."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s]+$")]
    """Container image of the hook; pin it by digest for reproducible runs."""
    command: Annotated[
        list[Annotated[str, StringConstraints(max_length=HOOK_ARG_MAX_LENGTH)]], Field(max_length=HOOK_ARG_MAX_ITEMS)
    ] = Field(default_factory=list)
    """Entrypoint (at most 32 items); empty: the image's."""
    args: Annotated[
        list[Annotated[str, StringConstraints(max_length=HOOK_ARG_MAX_LENGTH)]], Field(max_length=HOOK_ARG_MAX_ITEMS)
    ] = Field(default_factory=list)
    """Arguments (at most 32 items)."""
    env: Annotated[list[HookEnvVar], Field(max_length=16)] = Field(default_factory=list)
    """Extra environment variables (literal values; at most 16)."""
    timeout: Duration = "5m"
    """Longest run (the Job's activeDeadlineSeconds); past it the hook counts as failed."""
    failurePolicy: HookFailurePolicy = HookFailurePolicy.ROLLBACK
    """rollback: a failure rolls the canary back (with evidence); ignore: recorded, the rollout goes on."""


@cel(
    "duration(self.interval) >= duration('1s') && duration(self.interval) <= duration('10m')",
    "spec.hooks.confirmRollout.interval must be between 1s and 10m: set e.g. 15s",
    field_path=".interval",
)
@cel(
    "duration(self.timeout) >= duration('100ms') && duration(self.timeout) <= duration('1m')",
    "spec.hooks.confirmRollout.timeout must be between 100ms and 1m: set e.g. 5s",
    field_path=".timeout",
)
class WebhookGate(_Model):
    """An HTTP gate before the canary's first weight (Flagger's confirm-rollout contract): a POST with a
    JSON payload {name, namespace, phase, checksum, metadata}; 200 proceeds, anything else holds."""

    secretName: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)] = (
        WEBHOOK_SECRET_DEFAULT)
    """A Secret in the ModelDeployment's namespace with key `url` (the endpoint) and optionally `token`
    (sent as Authorization: Bearer). The operator may read only the Secret names the chart lists
    (hooks.webhookSecretNames, default tollgate-confirm-rollout); another name holds the gate with a
    message saying so."""
    interval: Duration = "10s"
    """How often a holding gate is asked again."""
    timeout: Duration = "5s"
    """Timeout of one call; a call that times out holds the gate."""


class Hooks(_Model):
    """Jobs run in the sandbox at fixed points of a rollout, and an HTTP confirmation gate."""

    preTraffic: HookJob | None = None
    """Smoke test against the canary's own Service, after it is Ready and before any weight."""
    duringAnalysis: HookJob | None = None
    """Runs from the canary's first weight while its steps are analysed (e.g. a load generator);
    removed at promotion or rollback."""
    prePromotion: HookJob | None = None
    """Last check after the last step passed, before promotion."""
    confirmRollout: WebhookGate | None = None
    """HTTP gate before the canary's first weight (after preTraffic)."""
    syntheticTraffic: SyntheticTraffic = SyntheticTraffic.INCLUDE
    """include: the requests hook Jobs send count in the SLOs like user requests (a duringAnalysis load
    generator then lets thin traffic reach minSamples). exclude: the built-in SLOs (and custom queries through
    {{selector}}) leave out requests tagged X-Tollgate-Synthetic, so verdicts rest on user traffic alone.
    exclude needs a metric profile whose series carry the tag (spec.metrics.profile: istio, with the Telemetry
    tag override in docs/operations.md); other profiles are refused at admission."""

    def job(self, name: str) -> HookJob | None:
        found: HookJob | None = getattr(self, name)
        return found

    @property
    def has_jobs(self) -> bool:
        return any(self.job(n) is not None for n in HOOK_NAMES)
