"""Hooks of a rollout (spec.hooks): when a hook Job must exist, what its result means, and the HTTP gate.

- preTraffic, then confirmRollout, gate the canary's first weight: the canary is Ready (its pods run, the
  canary Service selects them) but takes no request until the preTraffic Job succeeded and the gate
  answered 200. A failed preTraffic Job (or one past its timeout) with failurePolicy rollback rolls the
  canary back in that decision, before a single request reached it.
- duringAnalysis starts with the canary's first weight and runs while its steps are analysed; a failure
  applies its policy at once; its Job is removed when promotion starts or the canary ends.
- prePromotion gates the promotion after the last step passed.
- A hook is started by recording it in status (HookStatus, phase Running, with its Job's name);
  engine.hook_jobs renders the Job from that record, so the Job exists exactly while status says so.
  The result comes from the Job's watch (Observations.jobs); the timeout is also judged here, from the
  recorded start, so a hook whose Job never reports still ends.
- The gate is asked by the runtime when `webhook_due` says so (the first time at once, then every
  interval while it holds); its answer arrives as Observations.webhook.
- ignore: a failure is recorded (status, event, history) and the rollout goes on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tollgate.api.hook_status import HookPhase, HookStatus
from tollgate.api.hooks import CONFIRM_ROLLOUT, HookFailurePolicy, HookJob
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus, Phase
from tollgate.engine.actions import Cause, Context, Reason
from tollgate.engine.draft import Draft
from tollgate.engine.hook_jobs import canary_url, job_name
from tollgate.engine.hook_observations import JobState, WebhookCall
from tollgate.engine.rules.rollback import roll_back
from tollgate.engine.timeutil import parse_duration, parse_time
from tollgate.engine.traffic import receives

PRE_TRAFFIC = "preTraffic"
DURING_ANALYSIS = "duringAnalysis"
PRE_PROMOTION = "prePromotion"


def current(st: ModelDeploymentStatus, name: str) -> HookStatus | None:
    """The record of hook `name` for the running canary, if it was started."""
    if st.canary is None:
        return None
    return next((h for h in st.hooks if h.name == name and h.revision == st.canary.revision), None)


def _record(d: Draft, entry: HookStatus) -> None:
    """Put `entry` in status in place of the same hook's record; records of other revisions go."""
    keep = [h for h in d.st.hooks if h.revision == entry.revision and h.name != entry.name]
    d.st.hooks = [*keep, entry]


def _start(d: Draft, name: str, hook: HookJob) -> HookStatus:
    canary = d.st.canary
    assert canary is not None
    job = job_name(d.spec, d.ctx, name, canary.revision)
    entry = HookStatus(name=name, revision=canary.revision, phase=HookPhase.RUNNING, job=job, startedAt=d.at,
                       message=f"job {job} created (timeout {hook.timeout})")
    _record(d, entry)
    d.event(Reason.HOOK_STARTED, f"{name} hook: job {job} in {d.st.sandboxNamespace} for {canary.version}")
    return entry


def _judge(d: Draft, entry: HookStatus, hook: HookJob) -> HookStatus:
    """The record after looking at the Job: Succeeded, Failed (Job failed or timed out) or still Running."""
    if entry.phase is not HookPhase.RUNNING or entry.job is None:
        return entry
    seen = d.obs.job(entry.job)
    if seen is not None and seen.state is JobState.SUCCEEDED:
        done = entry.model_copy(update={"phase": HookPhase.SUCCEEDED, "finishedAt": d.at,
                                        "message": f"job {entry.job} succeeded"})
        _record(d, done)
        d.event(Reason.HOOK_SUCCEEDED, f"{entry.name} hook: job {entry.job} succeeded")
        return done
    why = None
    if seen is not None and seen.state is JobState.FAILED:
        why = f"job {entry.job} failed: {seen.reason or 'Failed'}" + (f": {seen.message}" if seen.message else "")
    else:
        started = parse_time(entry.startedAt) or d.now
        if d.now >= started + timedelta(seconds=parse_duration(hook.timeout)):
            why = f"job {entry.job} did not finish within its timeout {hook.timeout}"
    if why is None:
        return entry
    ignored = hook.failurePolicy is HookFailurePolicy.IGNORE
    failed = entry.model_copy(update={"phase": HookPhase.FAILED, "finishedAt": d.at, "message": why,
                                      "ignored": ignored})
    _record(d, failed)
    d.event(Reason.HOOK_FAILED, f"{entry.name} hook: {why}" + ("; failurePolicy ignore: the rollout goes on"
                                                               if ignored else ""), warning=True)
    return failed


def job_gate(d: Draft, name: str) -> bool | None:
    """Hook `name` gates what follows: True once it passed (no such hook, succeeded, or failed and ignored),
    False while it runs (started now if it was not), None when its failure rolled the canary back."""
    hook = d.spec.hooks.job(name)
    if hook is None:
        return True
    entry = current(d.st, name) or _start(d, name, hook)
    entry = _judge(d, entry, hook)
    if entry.phase is HookPhase.SUCCEEDED or (entry.phase is HookPhase.FAILED and entry.ignored):
        return True
    if entry.phase is HookPhase.FAILED:
        roll_back(d, Cause.HOOK, f"{name} hook failed (failurePolicy rollback): {entry.message}")
        return None
    return False


def confirm_gate(d: Draft) -> bool:
    """spec.hooks.confirmRollout: True once the endpoint answered 200 for this canary; else it holds."""
    gate = d.spec.hooks.confirmRollout
    if gate is None:
        return True
    canary = d.st.canary
    assert canary is not None
    entry = current(d.st, CONFIRM_ROLLOUT)
    if entry is not None and entry.phase is HookPhase.SUCCEEDED:
        return True
    if entry is None:
        entry = HookStatus(name=CONFIRM_ROLLOUT, revision=canary.revision, phase=HookPhase.RUNNING, startedAt=d.at,
                           message=f"asking the endpoint of Secret {d.ctx.namespace}/{gate.secretName}")
        _record(d, entry)
        d.event(Reason.HOOK_STARTED, f"confirmRollout: asking the endpoint of Secret "
                                     f"{d.ctx.namespace}/{gate.secretName} before {canary.version} takes traffic")
    answer = d.obs.webhook
    if answer is None:
        return False
    if answer.go:
        _record(d, entry.model_copy(update={"phase": HookPhase.SUCCEEDED, "finishedAt": d.at, "checkedAt": d.at,
                                            "message": "the endpoint answered 200"}))
        d.event(Reason.HOOK_SUCCEEDED, f"confirmRollout: the endpoint answered 200; {canary.version} proceeds")
        return True
    said = f"HTTP {answer.status}" if answer.status is not None else "no answer"
    message = f"the endpoint gave {said}" + (f" ({answer.detail})" if answer.detail else "") + \
        f"; holding, asking again every {gate.interval}"
    if entry.phase is not HookPhase.HOLDING or entry.message != message:
        d.event(Reason.HOOK_HOLDING, f"confirmRollout: {message}", warning=True)
    _record(d, entry.model_copy(update={"phase": HookPhase.HOLDING, "checkedAt": d.at, "message": message}))
    return False


def before_first_weight(d: Draft, label: str) -> bool | None:
    """preTraffic, then confirmRollout, before the canary's first weight: True to proceed, False to wait
    (phase says for what), None when rolled back."""
    passed = job_gate(d, PRE_TRAFFIC)
    if passed is None:
        return None
    if not passed:
        entry = current(d.st, PRE_TRAFFIC)
        d.phase(Phase.PROGRESSING, f"{label}: canary Ready, waiting for the preTraffic hook (job "
                                   f"{entry.job if entry else '?'}) before any traffic")
        return False
    if not confirm_gate(d):
        entry = current(d.st, CONFIRM_ROLLOUT)
        d.phase(Phase.PROGRESSING, f"{label}: canary Ready, waiting for confirmRollout: "
                                   f"{entry.message if entry else 'asking'}")
        return False
    return True


def before_promotion(d: Draft, label: str) -> bool | None:
    """prePromotion after the last step passed: True to promote, False to wait, None when rolled back."""
    passed = job_gate(d, PRE_PROMOTION)
    if passed is False:
        entry = current(d.st, PRE_PROMOTION)
        d.phase(Phase.PROGRESSING, f"{label} passed: waiting for the prePromotion hook (job "
                                   f"{entry.job if entry else '?'}) before promotion")
    return passed


def during_analysis(d: Draft) -> bool:
    """The duringAnalysis hook runs from the canary's first weight until promotion; False when its failure
    rolled the canary back."""
    hook = d.spec.hooks.duringAnalysis
    if hook is None or d.st.canary is None or d.st.promotingSince is not None:
        return True
    entry = current(d.st, DURING_ANALYSIS)
    if entry is None:
        if not receives(d.st):  # from the first weight or mirror (a shadow step is analysed too)
            return True
        entry = _start(d, DURING_ANALYSIS, hook)
    entry = _judge(d, entry, hook)
    if entry.phase is HookPhase.FAILED and not entry.ignored:
        roll_back(d, Cause.HOOK, f"duringAnalysis hook failed (failurePolicy rollback): {entry.message}")
        return False
    return True


def live_hooks(st: ModelDeploymentStatus, at: str) -> list[HookStatus]:
    """The records status keeps: those of the running canary, or of the latest one when none runs. A Job
    hook still running when its canary ended (or, duringAnalysis, when promotion started) is Stopped: its
    Job is removed."""
    entries = [h for h in st.hooks if st.canary is None or h.revision == st.canary.revision]
    out = []
    for entry in entries:
        ended = st.canary is None
        stopping = entry.name == DURING_ANALYSIS and st.promotingSince is not None
        if entry.phase is HookPhase.RUNNING and entry.job is not None and (ended or stopping):
            why = "promotion started" if stopping and not ended else "the canary ended"
            entry = entry.model_copy(update={"phase": HookPhase.STOPPED, "finishedAt": at,  # noqa: PLW2901
                                             "message": f"job {entry.job} removed while running: {why}"})
        out.append(entry)
    return out


def history_summary(st: ModelDeploymentStatus, revision: str) -> list[str]:
    """One line per hook of `revision` for its history entry."""
    out = []
    for h in st.hooks:
        if h.revision != revision:
            continue
        tail = " (ignored)" if h.ignored else ""
        where = f" (job {h.job})" if h.job else ""
        out.append(f"{h.name}: {h.phase.value}{tail}{where}")
    return out[:4]


def hook_deadline(spec: ModelDeploymentSpec, st: ModelDeploymentStatus, now: datetime) -> datetime | None:
    """When a running hook changes by time alone: a Job's timeout, or the gate's next question."""
    times: list[datetime] = []
    for entry in st.hooks:
        started = parse_time(entry.startedAt)
        if started is None or st.canary is None or entry.revision != st.canary.revision:
            continue
        job = spec.hooks.job(entry.name)
        if job is not None and entry.phase is HookPhase.RUNNING:
            times.append(started + timedelta(seconds=parse_duration(job.timeout)))
        gate = spec.hooks.confirmRollout
        if entry.name == CONFIRM_ROLLOUT and gate is not None and entry.phase in (HookPhase.RUNNING,
                                                                                   HookPhase.HOLDING):
            times.append(_next_question(entry, parse_duration(gate.interval), now))
    return min(times) if times else None


def _next_question(entry: HookStatus, interval: float, now: datetime) -> datetime:
    asked = parse_time(entry.checkedAt)
    return now if asked is None else asked + timedelta(seconds=interval)


def webhook_due(spec: ModelDeploymentSpec, st: ModelDeploymentStatus, ctx: Context, sandbox: str,
                now: datetime) -> WebhookCall | None:
    """The call the runtime makes before deciding at `now`: the gate waits for this canary and was never
    asked, or its interval since the last answer has passed; else None."""
    gate = spec.hooks.confirmRollout
    entry = current(st, CONFIRM_ROLLOUT)
    if gate is None or entry is None or st.canary is None or st.promotingSince is not None:
        return None
    if entry.phase not in (HookPhase.RUNNING, HookPhase.HOLDING):
        return None
    if now < _next_question(entry, parse_duration(gate.interval), now):
        return None
    return WebhookCall(
        secret_namespace=ctx.namespace, secret_name=gate.secretName, timeout=parse_duration(gate.timeout),
        payload={
            "name": ctx.name, "namespace": ctx.namespace, "phase": st.phase.value, "checksum": st.canary.revision,
            "type": "confirm-rollout",
            "metadata": {"version": st.canary.version, "stable": st.stable.version if st.stable else "",
                         "sandbox": sandbox, "canaryURL": canary_url(spec, ctx)},
        },
    )
