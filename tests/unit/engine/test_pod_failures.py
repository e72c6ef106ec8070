"""A canary that cannot start is rolled back when the kubelet says so, not at the progress deadline;
pods no node takes are reported with the scheduler's message, and the deadline counts from the moment
they are scheduled (issue 19)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tollgate.api.status import Phase
from tollgate.engine.actions import Cause, RecordEvidence, RollBack
from tollgate.engine.observations import Observations, PodProblem, PodProblemKind, SLOObservation
from tollgate.model_digest import DigestMismatch

from .conftest import Sim, make_spec

PULL = PodProblem(PodProblemKind.FAILING, "ImagePullBackOff", 'Back-off pulling image "registry.example/x:9"',
                  "fraud-scorer-canary-abc", "model-server")
CRASH = PodProblem(PodProblemKind.FAILING, "CrashLoopBackOff", "back-off 10s restarting failed container",
                   "fraud-scorer-canary-abc", "model-server", restarts=3, last_exit="Error, exit code 1")
NO_NODE = PodProblem(PodProblemKind.UNSCHEDULABLE, "Unschedulable",
                     "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", "fraud-scorer-canary-abc")


@dataclass
class PodSim(Sim):
    problems: dict[str, PodProblem] = field(default_factory=dict)
    """track -> what its pods report."""

    def observations(self, slos: tuple[SLOObservation, ...] | None) -> Observations:
        obs = super().observations(slos)
        tracks = {name: dataclasses.replace(getattr(obs, name), problem=self.problems.get(name))
                  for name in ("stable", "canary", "fallback")}
        return dataclasses.replace(obs, **tracks)


def _canary_waiting(problem: PodProblem) -> PodSim:
    sim = PodSim(make_spec())
    sim.deploy_stable()
    sim.set_version("1.1.0")
    sim.not_ready.add("canary")
    sim.step()
    assert sim.status.canary is not None and sim.status.phase is Phase.PROGRESSING
    sim.problems["canary"] = problem
    return sim


def test_image_that_never_pulls_is_rolled_back_when_the_kubelet_reports_it() -> None:
    # given a canary whose pods are not Ready, seconds after it started (deadline 5m away)
    sim = _canary_waiting(PULL)
    # when the kubelet reports ImagePullBackOff
    decision = sim.step(after=3)
    # then the canary is rolled back in that decision, with the container's own reason
    (rb,) = decision.of_type(RollBack)
    assert rb.cause is Cause.POD_FAILURE
    assert "ImagePullBackOff" in rb.reason and 'Back-off pulling image "registry.example/x:9"' in rb.reason
    assert sim.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert sim.status.canary is None and sim.status.rolledBackRevision is not None
    assert "ImagePullBackOff" in sim.status.history[0].reason
    # and the evidence carries it too
    (evidence,) = decision.of_type(RecordEvidence)
    assert "ImagePullBackOff" in str(evidence.payload)


def test_crash_loop_is_rolled_back_with_restarts_and_exit() -> None:
    sim = _canary_waiting(CRASH)
    (rb,) = sim.step(after=3).of_type(RollBack)
    assert rb.cause is Cause.POD_FAILURE
    assert "CrashLoopBackOff" in rb.reason and "3 restarts, last exit Error, exit code 1" in rb.reason


def test_deadline_counts_from_the_moment_the_canary_pods_are_scheduled() -> None:
    sim = _canary_waiting(NO_NODE)
    decision = sim.step(after=3)
    # no node takes the canary's pods: no rollback, and status says why in the scheduler's words
    assert not decision.of_type(RollBack)
    assert "Insufficient nvidia.com/gpu" in sim.status.message
    # waiting for a node longer than the 5-minute deadline does not count against the model
    assert not sim.step(after=400).of_type(RollBack)
    assert sim.status.canary is not None and sim.status.phase is Phase.PROGRESSING
    # once scheduled, the deadline runs from then: not yet 5 minutes later minus a bit ...
    del sim.problems["canary"]
    sim.step(after=1)
    assert not sim.step(after=290).of_type(RollBack)
    # ... and past it the canary is rolled back as before
    (rb,) = sim.step(after=20).of_type(RollBack)
    assert rb.cause is Cause.DEADLINE


def test_first_version_pending_says_why_its_pods_are_not_scheduled() -> None:
    sim = PodSim(make_spec())
    sim.not_ready.add("stable")
    sim.problems["stable"] = NO_NODE
    sim.step()
    sim.step(after=1)
    assert sim.status.phase is Phase.PENDING
    assert "0/4 pods Ready" in sim.status.message and "Insufficient nvidia.com/gpu" in sim.status.message


def test_first_version_waiting_for_a_node_is_not_stalled_by_the_deadline() -> None:
    sim = PodSim(make_spec())
    sim.not_ready.add("stable")
    sim.problems["stable"] = NO_NODE
    sim.step()
    sim.step(after=400)
    assert sim.status.phase is Phase.PENDING and "Insufficient nvidia.com/gpu" in sim.status.message


WRONG = PodProblem(PodProblemKind.FAILING, "ModelDigestMismatch", "", "fraud-scorer-canary-abc",
                   "storage-initializer", last_exit="Error, exit code 2",
                   digest=DigestMismatch(expected="sha256:" + "a" * 64, actual="sha256:" + "b" * 64))


def test_a_model_whose_digest_does_not_match_is_rolled_back_with_both_digests() -> None:
    # given a canary waiting for its pods (deadline 5m away)
    sim = _canary_waiting(WRONG)
    # when the storage initializer reports the fetched bytes do not match spec.model.digest
    decision = sim.step(after=2)
    # then it is rolled back in that decision: the canary never took traffic on those bytes
    (rb,) = decision.of_type(RollBack)
    assert rb.cause is Cause.POD_FAILURE
    assert sim.status.canary is None and sim.status.canaryWeight == 0
    # status says which digest was expected and which was fetched
    for text in (rb.reason, sim.status.history[0].reason):
        assert "ModelDigestMismatch" in text
        assert "sha256:" + "a" * 64 in text and "sha256:" + "b" * 64 in text
    # and the evidence has them as fields
    (evidence,) = decision.of_type(RecordEvidence)
    assert evidence.payload["modelDigest"] == {"expected": "sha256:" + "a" * 64, "actual": "sha256:" + "b" * 64,
                                               "uri": "s3://models/fraud/1.1.0"}
