"""Helm, kubeconform and local JSON schemas for the packaging tests (no internet at run time)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "tollgate"
BUILD_TOOLS = REPO / "hack" / "tools" / "build.sh"
KUBE_VERSION = "1.36.0"


def build_tools() -> Path:
    """helm and kubeconform built from their Go modules (cached under ~/.cache/tollgate/tools)."""
    out = subprocess.run(["bash", str(BUILD_TOOLS)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def run(*argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def render(bin_dir: Path, *, release: str = "tollgate", namespace: str = "tollgate-system",
           include_crds: bool = True, values: dict[str, Any] | None = None, api_versions: tuple[str, ...] = ()) -> str:
    """`api_versions`: what the cluster serves beyond helm's built-in list (helm reads it from a live cluster)."""
    argv: list[str | Path] = [bin_dir / "helm", "template", release, CHART, "--namespace", namespace,
                              "--kube-version", KUBE_VERSION]
    for api in api_versions:
        argv += ["--api-versions", api]
    if include_crds:
        argv.append("--include-crds")
    for key, value in _flatten(values or {}):
        argv += ["--set-json", f"{key}={json.dumps(value)}"]
    return run(*argv).stdout


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in values.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kubernetes_schemas(dest: Path, version: str = KUBE_VERSION) -> Path:
    """kubernetes-validate's bundled schemas (strict), rewritten so kubeconform resolves them offline.

    The bundled files carry `$id: https://kubernetes.io/...` and `$ref: /api/_definitions.json#...`,
    which a generic validator resolves to a URL and tries to download. Dropping `$id` and making
    the reference relative keeps every definition on disk, next to the schema that uses it.
    """
    import kubernetes_validate

    src = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    assert src.is_dir(), f"kubernetes-validate has no schemas for {version}: upgrade it"
    out = dest / f"v{version}-standalone-strict"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.json"):
        text = f.read_text().replace('"/api/_definitions.json#', '"_definitions.json#')
        schema = json.loads(text)
        schema.pop("$id", None)
        (out / f.name).write_text(json.dumps(schema))
    return dest


def crd_schemas(dest: Path, crd_files: list[Path]) -> Path:
    """JSON schemas of our own kinds, from the CRDs' openAPIV3Schema (kind-group-version.json)."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in crd_files:
        for crd in docs(f.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = _strict(json.loads(json.dumps(v["schema"]["openAPIV3Schema"])))
                schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{v['name']}"]}
                schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
                schema["properties"]["metadata"] = {"type": "object"}
                name = f"{kind.lower()}-{group.split('.')[0]}-{v['name']}.json"
                (dest / name).write_text(json.dumps(schema))
    return dest


def _strict(node: Any) -> Any:
    """OpenAPI v3 -> JSON schema: unknown fields are errors unless the CRD preserves them."""
    if isinstance(node, dict):
        preserve = node.pop("x-kubernetes-preserve-unknown-fields", False)
        int_or_string = node.pop("x-kubernetes-int-or-string", False)
        for k in [k for k in node if k.startswith("x-kubernetes-")]:
            node.pop(k)
        if int_or_string:
            node.pop("type", None)
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.get("nullable"):
            node.pop("nullable")
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
        if node.get("type") == "object" and "properties" in node and not preserve \
                and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for k, v in list(node.items()):
            if k in ("properties", "definitions"):
                node[k] = {pk: _strict(pv) for pk, pv in v.items()}
            elif isinstance(v, dict | list):
                node[k] = _strict(v)
        return node
    if isinstance(node, list):
        return [_strict(x) for x in node]
    return node


def kubeconform(bin_dir: Path, schemas: Path, crds: Path, *files: Path,
                skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validate files strictly against local schemas only; returns kubeconform's per-resource results."""
    argv: list[str | Path] = [
        bin_dir / "kubeconform", "-strict", "-summary", "-output", "json", "-verbose",
        "-kubernetes-version", KUBE_VERSION,
        "-schema-location", f"{schemas}/{{{{ .NormalizedKubernetesVersion }}}}-standalone{{{{ .StrictSuffix }}}}"
                            "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
        "-schema-location", f"{crds}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
    ]
    if skip:
        argv += ["-skip", ",".join(skip)]
    res = run(*argv, *files, check=False)
    out = json.loads(res.stdout)
    results: list[dict[str, Any]] = out["resources"]
    if res.returncode != 0:
        bad = [r for r in results if r["status"] not in ("statusValid", "statusSkipped")]
        raise AssertionError(f"kubeconform rejected:\n{json.dumps(bad, indent=1)}\n{res.stderr}")
    return results
