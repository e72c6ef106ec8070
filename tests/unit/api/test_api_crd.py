"""The committed CRD is exactly what the pydantic models generate, and it is a structural schema."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from tollgate.api import crdgen, resource
from tollgate.api.spec import ModelDeploymentSpec
from tollgate.api.status import ModelDeploymentStatus
from tollgate.api.validation import rules_of

REPO = Path(__file__).resolve().parents[3]
CRD_FILE = REPO / "crds" / crdgen.CRD_FILENAME


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: Any, path: str = "") -> typing.Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for name, sub in node.get("properties", {}).items():
            yield from _walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _models(cls: type[BaseModel]) -> typing.Iterator[tuple[type[BaseModel], str]]:
    """Every model class reachable from cls, with the schema path of one place it is used."""
    seen: set[type[BaseModel]] = set()

    def visit(c: type[BaseModel], path: str) -> typing.Iterator[tuple[type[BaseModel], str]]:
        if c in seen:
            return
        seen.add(c)
        yield c, path
        for name, field in c.model_fields.items():
            for t, suffix in _types(field.annotation):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    yield from visit(t, f"{path}.{name}{suffix}")

    yield from visit(cls, "")


def _types(annotation: Any, suffix: str = "") -> typing.Iterator[tuple[Any, str]]:
    yield annotation, suffix
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list:
        yield from _types(args[0], suffix + "[]")
    elif origin is dict:
        yield from _types(args[1], suffix + "{}")
    else:
        for arg in args:
            if not isinstance(arg, (str, int, float)) and arg is not None:
                yield from _types(arg, suffix)


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for p, node in _walk(schema):
        if p == path:
            return node
    raise KeyError(path)


def test_committed_crd_is_what_make_crds_generates() -> None:
    # given the CRD committed in crds/
    committed = CRD_FILE.read_text()
    # when it is generated afresh from the models
    generated = crdgen.render()
    # then they are identical (else: run `make crds` and commit)
    assert committed == generated, f"{CRD_FILE} is stale: run `make crds`"


def test_check_mode_reports_a_stale_file_and_accepts_a_fresh_one(tmp_path: Path) -> None:
    # given a directory with a stale CRD
    (tmp_path / crdgen.CRD_FILENAME).write_text("stale\n")
    # when --check runs, then it fails and writes nothing
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1
    assert (tmp_path / crdgen.CRD_FILENAME).read_text() == "stale\n"
    # when the file is generated, then --check passes
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0


def test_crd_names_scope_version_subresource_and_columns() -> None:
    # given the generated CRD
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]
    # then it is the namespaced ModelDeployment of tollgate.dev/v1alpha1
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "modeldeployments.tollgate.dev"
    assert (spec["group"], spec["scope"]) == ("tollgate.dev", "Namespaced")
    assert spec["names"]["kind"] == "ModelDeployment"
    assert spec["names"]["shortNames"] == ["md"]
    assert spec["names"]["categories"] == list(resource.CATEGORIES)
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Stable": ".status.stable.version",
        "Canary": ".status.canary.version",
        "Weight": ".status.canaryWeight",
        "Mirror": ".status.canaryMirror",
        "Served": ".status.served.canaryPercent",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }


FORBIDDEN_IN_STRUCTURAL = {
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "title",
    "patternProperties",
    "propertyNames",
    "const",
}


def test_schema_is_structural_every_node_typed_no_refs_no_null_defaults() -> None:
    # given the generated schema
    schema = _schema()
    for path, node in _walk(schema):
        # then nothing a structural schema forbids is left, and every node has a type
        assert not FORBIDDEN_IN_STRUCTURAL & node.keys(), (path, FORBIDDEN_IN_STRUCTURAL & node.keys())
        assert "type" in node, path
        assert node.get("default", "set") is not None, path
        assert node.get("additionalProperties") is not False, path
        assert not (node.get("additionalProperties") and node.get("properties")), path
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(key, True), bool), path


def test_every_spec_and_status_field_is_declared_with_a_description() -> None:
    # given the models and the schema
    schema = _schema()
    for root, cls_root in (("spec", ModelDeploymentSpec), ("status", ModelDeploymentStatus)):
        for cls, path in _models(cls_root):
            node = _at(schema, f".{root}{path}")
            # then every field of every model is a property (the server prunes nothing) ...
            assert set(node["properties"]) == set(cls.model_fields), (root, path)
            if root == "spec":
                # ... and in the spec every field explains itself to `kubectl explain`
                for name, prop in node["properties"].items():
                    assert prop.get("description"), f"spec{path}.{name} has no description"


def test_optional_fields_are_not_required_and_required_fields_are() -> None:
    schema = _schema()
    # then required mirrors the model: no default means required
    for cls, path in _models(ModelDeploymentSpec):
        node = _at(schema, f".spec{path}")
        required = {n for n, f in cls.model_fields.items() if f.is_required()}
        assert set(node.get("required", [])) == required, path
    assert _schema()["required"] == ["spec"]


def test_every_cel_rule_of_every_model_is_in_the_crd_where_the_model_is_used() -> None:
    schema = _schema()
    for cls, path in _models(ModelDeploymentSpec):
        rules = [r.rule for r in rules_of(cls)]
        node = _at(schema, f".spec{path}")
        declared = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
        # then each @cel rule sits on the node of its class, with its message
        for rule in rules:
            assert rule in declared, (cls.__name__, rule)


def test_status_carries_no_cel_rule_of_the_spec_models_it_reuses() -> None:
    # given the status schema (the operator writes it from a spec the server already validated)
    for path, node in _walk(_schema()["properties"]["status"]):
        # then no spec rule can refuse a status write
        assert "x-kubernetes-validations" not in node, path


def test_every_cel_message_names_a_spec_field() -> None:
    for cls, _ in _models(ModelDeploymentSpec):
        for rule in rules_of(cls):
            assert "spec." in rule.message, (cls.__name__, rule.message)
            assert ":" in rule.message, f"{rule.message!r} does not say how to fix it"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.replicas", {"minimum": 1, "maximum": 1000, "default": 2, "type": "integer"}),
        (".spec.rollout.steps[].weight", {"minimum": 1, "maximum": 100, "type": "integer"}),
        (".spec.riskTier", {"enum": ["low", "medium", "high", "critical"], "default": "medium"}),
        (".spec.traffic.router", {"enum": ["replicas", "gatewayAPI"], "default": "replicas"}),
        (".spec.slos[].onNoData", {"enum": ["hold", "fail", "pass"], "default": "hold"}),
        (".spec.slos[].maxNoDataDuration", {"default": "5m", "maxLength": 32}),
        (".spec.rollout.steps", {"minItems": 1, "maxItems": 20, "type": "array"}),
        (".spec.sandbox.quota", {"maxProperties": 16, "type": "object"}),
        (".status.phase", {"default": "Pending"}),
    ],
)
def test_schema_keeps_ranges_enums_and_non_null_defaults(path: str, expected: dict[str, Any]) -> None:
    node = _at(_schema(), path)
    assert {k: node.get(k) for k in expected} == expected


def test_durations_and_quantities_carry_their_patterns() -> None:
    schema = _schema()
    assert _at(schema, ".spec.rollout.progressDeadline")["pattern"] == crdgen_spec().DURATION_PATTERN
    assert _at(schema, ".spec.sandbox.quota{}")["pattern"] == crdgen_spec().QUANTITY_PATTERN
    # dict keys with a pattern become a CEL rule on the map (structural schemas have no patternProperties)
    rules = [v["rule"] for v in _at(schema, ".spec.runtime.resources.limits")["x-kubernetes-validations"]]
    assert any("k.matches(" in r for r in rules)


def crdgen_spec() -> Any:
    from tollgate.api import spec

    return spec


def test_status_conditions_are_a_list_map_keyed_by_type() -> None:
    node = _at(_schema(), ".status.conditions")
    assert node["x-kubernetes-list-type"] == "map"
    assert node["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in node["items"]["required"]


def test_generation_is_deterministic() -> None:
    assert crdgen.render() == crdgen.render()
