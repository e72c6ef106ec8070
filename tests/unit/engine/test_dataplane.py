"""The gatewayAPI router in the platform's data-plane dialect (engine.dataplane, issue 21): the engine decides
weights, the mirrored percent and the rate limits in force; the traefik dialect renders them as Traefik carries
them out (docs/gateway.md: never a RequestMirror filter, which Traefik answers with 500 for every request)."""

from __future__ import annotations

from typing import Any

from tollgate.api.routers import GatewayDialect
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import Phase
from tollgate.engine.actions import ApplyObjects, DeleteObjects, SetWeight
from tollgate.engine.dataplane import RATE_KEY_HEADER
from tollgate.engine.observations import Controls

from .conftest import BAD, GOOD, Sim, objects_of
from .test_shadow import enter_shadow, shadow_spec

TRAEFIK = GatewayDialect.TRAEFIK
NAME = "fraud-scorer"


def limited_spec(*steps: dict[str, Any], **overrides: Any) -> ModelDeploymentSpec:
    """A gatewayAPI spec with these steps (default: shadow 50%, 10%, 100%) and these spec.traffic fields."""
    limits = {k: overrides.pop(k) for k in ("canaryRateLimit", "rateLimit") if k in overrides}
    spec = shadow_spec(*steps, **overrides)
    return spec.model_copy(update={"traffic": spec.traffic.model_copy(update=limits)})


def last(sim: Sim, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for d in sim.decisions for o in objects_of(d, kind) if name is None or o["metadata"]["name"] == name]
    assert found, f"no {kind} {name or ''} applied"
    return dict(found[-1])


def rule(sim: Sim) -> dict[str, Any]:
    (only,) = last(sim, "HTTPRoute")["spec"]["rules"]
    return dict(only)


def refs(sim: Sim) -> list[tuple[str, str, int]]:
    return [(b.get("kind", "Service"), b["name"], b["weight"]) for b in rule(sim)["backendRefs"]]


def named_before_the_route(sim: Sim) -> bool:
    """In the last decision's ApplyObjects, every Traefik object comes before the HTTPRoute that names it."""
    (apply,) = sim.decisions[-1].of_type(ApplyObjects)
    kinds = [o["kind"] for o in apply.objects]
    return "TraefikService" in kinds and max(i for i, k in enumerate(kinds) if k in ("TraefikService", "Middleware")
                                             ) < kinds.index("HTTPRoute")


def never_request_mirror(sim: Sim) -> None:
    routes = [r for d in sim.decisions for r in objects_of(d, "HTTPRoute")]
    assert routes and "RequestMirror" not in str(routes)


def test_traefik_a_shadow_step_is_a_mirroring_service_behind_stables_backend_ref() -> None:
    # given the platform's dialect is traefik, when a canary enters its shadow step (50% mirrored)
    sim = Sim(shadow_spec(), dialect=TRAEFIK)
    enter_shadow(sim)
    # then the route's stable backendRef is the mirroring TraefikService, the canary's weight 0
    assert refs(sim) == [("TraefikService", f"{NAME}-mirror", 100), ("Service", f"{NAME}-canary", 0)]
    assert "filters" not in rule(sim)
    # and that service answers from stable and copies 50% to the canary Service, in the sandbox, owned
    mirror = last(sim, "TraefikService", f"{NAME}-mirror")
    assert mirror["apiVersion"] == "traefik.io/v1alpha1"
    assert mirror["spec"] == {"mirroring": {"name": f"{NAME}-stable", "port": 8080, "mirrors": [
        {"name": f"{NAME}-canary", "port": 8080, "percent": 50}]}}
    sandbox = sim.status.sandboxNamespace
    assert mirror["metadata"]["namespace"] == last(sim, "HTTPRoute")["metadata"]["namespace"] == sandbox
    assert mirror["metadata"]["labels"] == last(sim, "HTTPRoute")["metadata"]["labels"]
    # and no route of the rollout ever carried a RequestMirror filter (Traefik answers those 500)
    never_request_mirror(sim)
    # and it is applied before the route that names it
    assert named_before_the_route(sim)


def test_traefik_the_shadow_steps_successor_names_stables_own_service_again() -> None:
    sim = Sim(shadow_spec(), dialect=TRAEFIK)
    enter_shadow(sim)
    sim.tick(GOOD)
    assert (sim.status.canaryWeight, sim.status.canaryMirror) == (10, 0)
    assert refs(sim) == [("Service", f"{NAME}-stable", 90), ("Service", f"{NAME}-canary", 10)]
    # the mirroring service stays, mirroring nothing, named by no route
    assert last(sim, "TraefikService", f"{NAME}-mirror")["spec"]["mirroring"]["mirrors"][0]["percent"] == 0


def test_traefik_a_failing_shadow_step_leaves_through_the_fast_path_to_stables_own_service() -> None:
    sim = Sim(shadow_spec(), dialect=TRAEFIK)
    enter_shadow(sim)
    d = sim.tick(BAD)
    assert sim.status.phase in (Phase.ROLLED_BACK, Phase.ROLLING_BACK)
    (sw,) = d.of_type(SetWeight)
    assert (sw.fast, sw.mirror_percent, sw.dialect) == (True, 0, TRAEFIK)
    assert refs(sim) == [("Service", f"{NAME}-stable", 100), ("Service", f"{NAME}-canary", 0)]
    never_request_mirror(sim)


def test_traefik_the_canary_rate_limit_sends_what_is_over_it_to_stable_and_status_shows_it() -> None:
    # given a canary limited to 5 requests per second, and the traefik dialect
    sim = Sim(limited_spec({"weight": 50}, {"weight": 100}, canaryRateLimit=5), dialect=TRAEFIK)
    sim.deploy_stable()
    # then while only stable runs, no limit is in force, and the route names the plain Services
    assert sim.status.rateLimits is None
    assert refs(sim) == [("Service", f"{NAME}-stable", 100), ("Service", f"{NAME}-canary", 0)]
    # when a canary takes 50% of the users
    sim.set_version("2.0.0")
    sim.step()
    sim.step()
    assert sim.status.canaryWeight == 50, sim.status.message
    # then status shows the limit in force at the gateway
    assert sim.status.rateLimits is not None
    assert (sim.status.rateLimits.canary, sim.status.rateLimits.model) == (5, None)
    assert "traefik" in sim.status.rateLimits.enforcedBy
    # and the canary's 50% goes through a failover service: the canary behind the limit, stable on a 429
    assert refs(sim) == [("Service", f"{NAME}-stable", 50), ("TraefikService", f"{NAME}-canary-limited", 50)]
    failover = last(sim, "TraefikService", f"{NAME}-canary-limited")["spec"]["failover"]
    assert failover == {
        "service": {"name": f"{NAME}-canary", "port": 8080,
                    "middlewares": [{"name": f"{NAME}-rate-key"}, {"name": f"{NAME}-canary-rate-limit"}]},
        "fallback": {"name": f"{NAME}-stable", "port": 8080},
        "errors": {"status": ["429"]}}
    # and the limit is one token bucket of 5 a second (burst 5) for all clients: keyed by a header Tollgate sets
    limit = last(sim, "Middleware", f"{NAME}-canary-rate-limit")["spec"]["rateLimit"]
    assert limit == {"average": 5, "period": "1s", "burst": 5,
                     "sourceCriterion": {"requestHeaderName": RATE_KEY_HEADER}}
    key = last(sim, "Middleware", f"{NAME}-rate-key")["spec"]
    assert key == {"headers": {"customRequestHeaders": {RATE_KEY_HEADER: NAME}}}
    # when the canary is promoted, no canary limit is in force any more, and the route names stable's Service
    sim.tick(GOOD)
    sim.tick(GOOD)
    sim.settle()
    assert sim.status.canary is None and sim.status.rateLimits is None, sim.status.phase
    assert all(kind == "Service" for kind, _, _ in refs(sim)), refs(sim)


def test_traefik_a_shadow_steps_mirror_carries_the_canary_limit_too() -> None:
    sim = Sim(limited_spec(canaryRateLimit=5), dialect=TRAEFIK)
    enter_shadow(sim)
    assert sim.status.rateLimits is not None and sim.status.rateLimits.canary == 5
    (mirror,) = last(sim, "TraefikService", f"{NAME}-mirror")["spec"]["mirroring"]["mirrors"]
    assert mirror["middlewares"] == [{"name": f"{NAME}-rate-key"}, {"name": f"{NAME}-canary-rate-limit"}]


def test_traefik_the_model_rate_limit_is_on_the_rule_and_stays_under_the_kill_switch() -> None:
    # given a model-wide limit of 100 requests per second, a fallback version and the traefik dialect
    sim = Sim(limited_spec({"weight": 50}, {"weight": 100}, fallback={"version": "0.9.0"}, rateLimit=100),
              dialect=TRAEFIK)
    sim.deploy_stable()
    # then the route's rule sets the key and then limits every request of the model
    ext = [f["extensionRef"] for f in rule(sim)["filters"]]
    assert ext == [{"group": "traefik.io", "kind": "Middleware", "name": f"{NAME}-rate-key"},
                   {"group": "traefik.io", "kind": "Middleware", "name": f"{NAME}-rate-limit"}]
    assert last(sim, "Middleware", f"{NAME}-rate-limit")["spec"]["rateLimit"]["average"] == 100
    limits = sim.status.rateLimits
    assert limits is not None and (limits.canary, limits.model) == (None, 100)
    # when the kill switch sends everything to the fallback
    sim.spec = sim.spec.model_copy(update={"killSwitch": True})
    sim.settle()
    # then the fallback takes every request and the model's limit still holds
    assert refs(sim)[-1] == ("Service", f"{NAME}-fallback", 100)
    assert [f["extensionRef"]["name"] for f in rule(sim)["filters"]] == [f"{NAME}-rate-key", f"{NAME}-rate-limit"]
    assert sim.status.rateLimits is not None and sim.status.rateLimits.model == 100


def test_standard_dialect_renders_the_gateway_api_request_mirror_and_no_traefik_object() -> None:
    sim = Sim(shadow_spec())
    enter_shadow(sim)
    assert rule(sim)["filters"][0]["type"] == "RequestMirror"
    assert not any(objects_of(d, "TraefikService") or objects_of(d, "Middleware") for d in sim.decisions)
    assert sim.status.rateLimits is None


def test_abort_in_the_traefik_dialect_names_stable_alone() -> None:
    sim = Sim(shadow_spec(), dialect=TRAEFIK)
    enter_shadow(sim)
    assert sim.routing is not None and sim.routing.sole is None  # stable answers, the canary gets copies
    sim.controls = Controls(abort="alice")
    sim.step()
    assert refs(sim) == [("Service", f"{NAME}-stable", 100), ("Service", f"{NAME}-canary", 0)]
    assert sim.routing is not None and sim.routing.sole is not None and sim.routing.sole.value == "stable"


def deleted(sim: Sim) -> set[tuple[str, str]]:
    return {(ref.kind, ref.name) for d in sim.decisions for a in d.of_type(DeleteObjects) for ref in a.refs}


ALL_TRAEFIK = {("Middleware", f"{NAME}-rate-key"), ("Middleware", f"{NAME}-canary-rate-limit"),
               ("TraefikService", f"{NAME}-canary-limited"), ("Middleware", f"{NAME}-rate-limit"),
               ("TraefikService", f"{NAME}-mirror")}


def named(route: dict[str, Any]) -> set[tuple[str, str]]:
    """The traefik objects a route names: TraefikService backendRefs and Middleware ExtensionRef filters."""
    (only,) = route["spec"]["rules"]
    out = {("TraefikService", b["name"]) for b in only["backendRefs"] if b.get("kind") == "TraefikService"}
    return out | {("Middleware", f["extensionRef"]["name"]) for f in only.get("filters") or []
                  if f["type"] == "ExtensionRef"}


def test_traefik_a_route_names_only_objects_that_existed_before_its_apply() -> None:
    # given a model running with no limit, in the traefik dialect
    sim = Sim(limited_spec({"weight": 50}, {"weight": 100, "approval": "required"}), dialect=TRAEFIK)
    sim.deploy_stable()
    # then every Traefik object exists already, those the spec does not use limiting nothing
    assert set(sim.dataplane_objects) == ALL_TRAEFIK
    for name in (f"{NAME}-canary-rate-limit", f"{NAME}-rate-limit"):
        assert last(sim, "Middleware", name)["spec"]["rateLimit"]["average"] == 0  # Traefik: no limit
    assert named(last(sim, "HTTPRoute")) == set()
    # when a canary runs and the platform switches both limits on (one spec change, as in an incident)
    sim.set_version("2.0.0")
    sim.settle()
    existed = set(sim.dataplane_objects)
    seen = len(sim.decisions)
    sim.spec = sim.spec.model_copy(update={"traffic": sim.spec.traffic.model_copy(
        update={"canaryRateLimit": 5, "rateLimit": 100})})
    sim.settle()
    # then the routes applied since name the limits' objects, and each was there before (Traefik runs it: a
    # route naming an object Traefik's other provider has not loaded answers 404, docs/gateway.md)
    routes = [r for d in sim.decisions[seen:] for r in objects_of(d, "HTTPRoute")]
    assert named(routes[-1]) == {("TraefikService", f"{NAME}-canary-limited"), ("Middleware", f"{NAME}-rate-key"),
                                 ("Middleware", f"{NAME}-rate-limit")}
    assert all(named(r) <= existed for r in routes), [named(r) - existed for r in routes]
    assert last(sim, "Middleware", f"{NAME}-rate-limit")["spec"]["rateLimit"]["average"] == 100


def test_traefik_a_lifted_rate_limit_keeps_its_objects_limiting_nothing_and_unnamed() -> None:
    # given a canary limit and a model limit in force at a 50% step, and the traefik dialect
    sim = Sim(limited_spec({"weight": 50}, {"weight": 100, "approval": "required"}, canaryRateLimit=5, rateLimit=100),
              dialect=TRAEFIK)
    sim.deploy_stable()
    sim.set_version("2.0.0")
    sim.settle()
    assert sim.status.canaryWeight == 50, sim.status.message
    assert set(sim.dataplane_objects) == ALL_TRAEFIK and not deleted(sim)
    # when the platform lifts both limits
    sim.spec = sim.spec.model_copy(update={"traffic": sim.spec.traffic.model_copy(
        update={"canaryRateLimit": None, "rateLimit": None})})
    sim.settle()
    # then the route names plain Services and no filter, and the limits' Middlewares limit nothing: one still
    # named by a stale route or by hand would not go on limiting
    assert refs(sim) == [("Service", f"{NAME}-stable", 50), ("Service", f"{NAME}-canary", 50)]
    assert "filters" not in rule(sim)
    for name in (f"{NAME}-canary-rate-limit", f"{NAME}-rate-limit"):
        assert last(sim, "Middleware", name)["spec"]["rateLimit"]["average"] == 0
    assert sim.status.rateLimits is None
    assert set(sim.dataplane_objects) == ALL_TRAEFIK and not deleted(sim)


def test_a_dialect_that_no_longer_wants_the_traefik_objects_removes_them() -> None:
    # given a model with a canary limit in the traefik dialect
    sim = Sim(limited_spec({"weight": 50}, {"weight": 100}, canaryRateLimit=5), dialect=TRAEFIK)
    sim.deploy_stable()
    assert set(sim.dataplane_objects) == ALL_TRAEFIK
    # when the platform team moves the chart to the standard dialect (whose gateways have no such objects)
    sim.dialect = GatewayDialect.STANDARD
    sim.spec = sim.spec.model_copy(update={"traffic": sim.spec.traffic.model_copy(update={"canaryRateLimit": None})})
    sim.settle()
    # then every Traefik object of the model is deleted, and the route names plain Services
    assert deleted(sim) == ALL_TRAEFIK and not sim.dataplane_objects
    assert all(kind == "Service" for kind, _, _ in refs(sim)), refs(sim)
