"""The plugin's only door to the cluster: kubeconfig handling like kubectl, reads, merge patches, watches.

Everything else in tollgate.cli works on plain dicts, so rendering and control rules are unit-tested
without a cluster. API errors are translated into CliError with a distinct exit code here, once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from tollgate.adapters.evidence import EVIDENCE_KEY
from tollgate.api import templates
from tollgate.api.resource import GROUP, KIND, PLURAL, VERSION
from tollgate.cli.errors import CliError, Exit

Items = list[dict[str, Any]]

FIELD_MANAGER = "kubectl-tollgate"
"""Field manager of every write, so `managedFields` shows which fields the plugin set."""


@dataclass
class Session:
    """An API client for one kubeconfig context, and the namespace kubectl would use."""

    api: client.ApiClient
    namespace: str
    context: str | None
    context_user: str | None

    # ------------------------------------------------------------------ reads

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        with api_errors(f'modeldeployment "{name}" in namespace "{namespace}"'):
            obj = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return _as_dict(obj)

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        where = f'namespace "{namespace}"' if namespace else "all namespaces"
        with api_errors(f"modeldeployments in {where}"):
            if namespace:
                out = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            else:
                out = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        items: list[dict[str, Any]] = _as_dict(out).get("items") or []
        return items

    def evidence(self, namespace: str, name: str) -> dict[str, Any]:
        with api_errors(f'evidence ConfigMap "{name}" in namespace "{namespace}"'):
            cm = client.CoreV1Api(self.api).read_namespaced_config_map(name, namespace)
        raw = (cm.data or {}).get(EVIDENCE_KEY)
        if raw is None:
            raise CliError(f'ConfigMap "{name}" has no {EVIDENCE_KEY} key: it is not a Tollgate evidence record',
                           Exit.NOT_FOUND)
        try:
            record: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise CliError(f'evidence "{name}" is not valid JSON: {exc}') from exc
        return record

    def slo_template(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A ClusterSLOTemplate (namespace '') or an SLOTemplate, or None where it does not exist: the
        dashboard charts an SLO that names a template with the template's own query, as the operator
        measures it."""
        cluster = kind == templates.CLUSTER_KIND
        what = f'{kind} "{name}"' + ("" if cluster else f' in namespace "{namespace}"')
        try:
            with api_errors(what):
                if cluster:
                    obj = self._custom.get_cluster_custom_object(GROUP, VERSION, templates.CLUSTER_PLURAL, name)
                else:
                    obj = self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, templates.PLURAL,
                                                                    name)
        except CliError as exc:
            if exc.code is Exit.NOT_FOUND:
                return None
            raise
        return _as_dict(obj)

    def whoami(self) -> str | None:
        """The user the API server authenticates us as (SelfSubjectReview), or None if unavailable."""
        try:
            review = client.AuthenticationV1Api(self.api).create_self_subject_review(
                body=client.V1SelfSubjectReview(), _request_timeout=10)
        except (ApiException, urllib3.exceptions.HTTPError, OSError):
            return None
        info = getattr(getattr(review, "status", None), "user_info", None)
        name = getattr(info, "username", None)
        return str(name) if name else None

    # ------------------------------------------------------------------ writes (never status)

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of metadata.annotations or spec (the main resource, never /status)."""
        assert "status" not in body, "the plugin never writes status"
        with api_errors(f'modeldeployment "{name}" in namespace "{namespace}"', verb="patch"):
            obj = self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body, field_manager=FIELD_MANAGER,
                _content_type="application/merge-patch+json")
            return _as_dict(obj)

    # ------------------------------------------------------------------ watch

    def watch(self, namespace: str, name: str, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        """Events (type, object) of one ModelDeployment from `resource_version` for up to `timeout` s."""
        w = watch.Watch()  # type: ignore[no-untyped-call]
        with api_errors(f'modeldeployment "{name}" in namespace "{namespace}"', verb="watch"):
            try:
                yield from w.stream(  # type: ignore[no-untyped-call]
                    self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                    field_selector=f"metadata.name={name}", resource_version=resource_version,
                    timeout_seconds=max(1, timeout), allow_watch_bookmarks=False,
                )
            except ApiException as exc:
                if exc.status != 410:  # 410 Gone: the caller re-reads and watches again
                    raise

    def list_versioned(self, namespace: str | None) -> tuple[Items, str]:
        """Like `list`, with the list's resourceVersion, from which `watch_all` continues."""
        where = f'namespace "{namespace}"' if namespace else "all namespaces"
        with api_errors(f"modeldeployments in {where}", verb="list"):
            if namespace:
                out = self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
            else:
                out = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        body = _as_dict(out)
        items: Items = body.get("items") or []
        return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch_all(self, namespace: str | None, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
        """Events of every ModelDeployment (in `namespace`, or all) from `resource_version`, for up to
        `timeout` s: one watch for the whole list, not one per object. An expired resourceVersion (410
        Gone) ends the stream with an event of type EXPIRED: the caller lists again."""
        w = watch.Watch()  # type: ignore[no-untyped-call]
        where = f'namespace "{namespace}"' if namespace else "all namespaces"
        call = (self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL) if namespace else (
            self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
        with api_errors(f"modeldeployments in {where}", verb="watch"):
            try:
                yield from w.stream(  # type: ignore[no-untyped-call]
                    *call, resource_version=resource_version, timeout_seconds=max(1, timeout),
                    allow_watch_bookmarks=True, _request_timeout=max(1, timeout) + 15)
            except ApiException as exc:
                if exc.status != 410:
                    raise
                yield {"type": "EXPIRED", "object": {}}

    @property
    def _custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)


def connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Session:
    """Load credentials like kubectl: --kubeconfig, else $KUBECONFIG (':'-separated), else ~/.kube/config,
    else in-cluster; the namespace is -n, else the context's namespace, else "default"."""
    files = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    have_file = kubeconfig is not None or any(os.path.exists(p) for p in files.split(os.pathsep) if p)
    if not have_file and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise CliError(f"in-cluster configuration failed: {exc}", Exit.UNREACHABLE) from exc
        ns = namespace or _incluster_namespace()
        return Session(client.ApiClient(), ns, None, None)
    if not have_file:
        raise CliError(f"no kubeconfig found (looked at {files}): pass --kubeconfig or set KUBECONFIG",
                       Exit.UNREACHABLE)
    try:
        contexts, active = config.list_kube_config_contexts(config_file=files)  # type: ignore[no-untyped-call]
        chosen = active
        if context is not None:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                names = ", ".join(c.get("name", "?") for c in contexts) or "none"
                raise CliError(f'context "{context}" not found in {files} (contexts: {names})', Exit.UNREACHABLE)
        cfg = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context, client_configuration=cfg)
    except ConfigException as exc:
        raise CliError(f"cannot use kubeconfig {files}: {exc}", Exit.UNREACHABLE) from exc
    details = (chosen or {}).get("context") or {}
    ns = namespace or details.get("namespace") or "default"
    return Session(client.ApiClient(cfg), ns, (chosen or {}).get("name"), details.get("user"))


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CliError(f"unexpected answer from the API server: {type(value).__name__}")
    return value


def _incluster_namespace() -> str:
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path) as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


@contextlib.contextmanager
def api_errors(what: str, verb: str = "get") -> Iterator[None]:
    """Translate client exceptions into CliError with the exit code a script can branch on."""
    try:
        yield
    except ApiException as exc:
        raise _from_api(exc, what, verb) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise CliError(f"cannot reach the API server: {_short(exc)}", Exit.UNREACHABLE) from exc


def _from_api(exc: ApiException, what: str, verb: str) -> CliError:
    detail = _api_message(exc)
    if exc.status == 404:
        if "the server could not find the requested resource" in detail.lower():
            return CliError(f"the {KIND} API ({GROUP}/{VERSION}) is not installed on this cluster: "
                            "install Tollgate's CRDs first", Exit.NOT_FOUND)
        return CliError(f"{what} not found", Exit.NOT_FOUND)
    if exc.status == 401:
        return CliError(f"unauthorized: the API server did not accept your credentials ({detail})",
                        Exit.FORBIDDEN)
    if exc.status == 403:
        return CliError(f"forbidden: you may not {verb} {what}: {detail}", Exit.FORBIDDEN)
    if exc.status in (0, None):
        return CliError(f"cannot reach the API server: {detail}", Exit.UNREACHABLE)
    return CliError(f"the API server refused to {verb} {what} ({exc.status}): {detail}")


def _api_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason or exc)


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
