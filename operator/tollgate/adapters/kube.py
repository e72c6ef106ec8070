"""Kubernetes adapter: server-side apply with one field manager, idempotent and retried.

Why a hash annotation: a server-side apply that changes nothing is still a PATCH request, and an
operator that PATCHes every child on every reconcile loads the API server for nothing. Each object
Tollgate applies carries `tollgate.dev/applied-hash` of its desired manifest; when the cached (or,
after a restart, the live) hash matches, nothing is sent. Reads only happen on a cache miss.

Why raw paths instead of the dynamic client: discovery costs dozens of requests per start and the
set of kinds Tollgate writes is small and fixed.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import (
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tollgate.adapters import json_codec
from tollgate.adapters.errors import (
    CLIENT_ERRORS,
    ConflictError,
    FencedError,
    KubeError,
    NotFoundError,
    translate,
)
from tollgate.adapters.server_clock import ServerClock
from tollgate.adapters.throttle import Throttle, Ticket
from tollgate.api.resource import FIELD_MANAGER, GROUP, PLURAL, VERSION
from tollgate.engine.actions import ObjectRef
from tollgate.engine.autoscale import ANNOTATION_AUTOSCALED

log = logging.getLogger("tollgate.kube")

ANNOTATION_HASH = "tollgate.dev/applied-hash"

LIST_PAGE = 500
"""Objects per page of every LIST (`limit`, then `continue`), as kubectl pages. Whole LISTs held the start-up's
90,000 children of 10,000 ModelDeployments at once (~1 GB of parsed JSON); Python's allocator kept those
arenas afterwards, so a replica restarted at 10,000 sat at 1.9 GB (bench/README.md, issue 22)."""

# kind -> (plural, namespaced)
_KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ServiceAccount": ("serviceaccounts", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "Secret": ("secrets", True),
    "Deployment": ("deployments", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "Job": ("jobs", True),
    "NetworkPolicy": ("networkpolicies", True),
    "HTTPRoute": ("httproutes", True),
    "TraefikService": ("traefikservices", True),
    "Middleware": ("middlewares", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Lease": ("leases", True),
    "ModelDeployment": (PLURAL, True),
}


def ref_of(obj: Mapping[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return interned(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))


def interned(api_version: str, kind: str, name: str, namespace: str | None) -> ObjectRef:
    """An ObjectRef whose strings are shared: the caches below hold ~10 refs per ModelDeployment, each
    parsed from its own watch event, and the same apiVersion, kind and sandbox namespace over and over
    (about 3 KB per ModelDeployment as separate strings; bench/README.md)."""
    return ObjectRef(sys.intern(api_version), sys.intern(kind), sys.intern(name),
                     sys.intern(namespace) if namespace else None)


def api_base(api_version: str) -> str:
    """The REST prefix of an apiVersion: the core group under /api, every other group under /apis."""
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def path_of(ref: ObjectRef) -> str:
    """The REST path of one object."""
    plural, namespaced = _KINDS[ref.kind]
    base = api_base(ref.api_version)
    if namespaced:
        if not ref.namespace:
            raise ValueError(f"{ref.kind}/{ref.name} needs a namespace")
        return f"{base}/namespaces/{ref.namespace}/{plural}/{ref.name}"
    return f"{base}/{plural}/{ref.name}"


def collection_path_of(ref: ObjectRef) -> str:
    return path_of(ref).rsplit("/", 1)[0]


MAX_RETRY_AFTER = 30.0
"""The longest Retry-After honoured within one request's retries; beyond it the error reaches the
reconcile loop, which waits that long before deciding again."""


def retry_after(exc: BaseException) -> float | None:
    """Seconds the API server asked us to wait (429, or 503 with Retry-After), else None."""
    if not isinstance(exc, ApiException) or exc.status not in (429, 503):
        return None
    raw = (exc.headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (409, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError)


_backoff = wait_exponential_jitter(multiplier=0.2, max=4.0)


def _wait(state: Any) -> float:
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""
    exc = state.outcome.exception() if state.outcome is not None else None
    asked = retry_after(exc) if exc is not None else None
    base = float(_backoff(state))
    return base if asked is None else max(base, min(asked, MAX_RETRY_AFTER))


# Bounded: a conflict, throttling, a 5xx or a timeout is retried at most 5 times, then the error
# reaches the reconcile loop, which reports it and tries again at its next wake-up (after the
# server's Retry-After when it sent one).
api_retry = retry(
    retry=retry_if_exception(_retryable),
    stop=stop_after_attempt(5),
    wait=_wait,
    reraise=True,
)


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """Stable hash of a desired manifest (without our own hash annotation)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def live_fingerprint(obj: Mapping[str, Any]) -> str:
    """Hash of what another writer could change in an object Tollgate manages: everything but metadata
    and status, plus the labels and our own annotations. Status, resourceVersion, managedFields and the
    annotations controllers add (deployment.kubernetes.io/revision) change without anyone touching our
    intent, so they are left out; a hand edit of spec, a label or our hash annotation is not. So is the
    replica count of a Deployment marked autoscaled: the autoscaler changes it, by design."""
    meta = obj.get("metadata") or {}
    content = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    if (meta.get("annotations") or {}).get(ANNOTATION_AUTOSCALED) == "true" and isinstance(content.get("spec"), dict):
        # An autoscaler owns this Deployment's replicas (engine.autoscale): its scaling is not a drift.
        content["spec"] = {k: v for k, v in content["spec"].items() if k != "replicas"}
    content["__labels"] = meta.get("labels") or {}
    content["__annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                                if k.startswith("tollgate.dev/")}
    # Compared only with fingerprints this process computed (never stored on an object, unlike
    # manifest_hash's digest), so the faster serialiser is free to differ from json.dumps byte for byte.
    return hashlib.sha256(json_codec.canonical(content)).hexdigest()[:20]


HANDOVER_MANAGER = "tollgate-replicas-handover"
"""The field manager that holds a Deployment's replicas between Tollgate's last apply with them and the
autoscaler's first write (see Kube._hand_over_replicas)."""


def hands_over_replicas(obj: Mapping[str, Any]) -> bool:
    """A Deployment rendered for an autoscaler: marked autoscaled, without spec.replicas."""
    meta = obj.get("metadata") or {}
    return (obj.get("kind") == "Deployment" and (meta.get("annotations") or {}).get(ANNOTATION_AUTOSCALED) == "true"
            and "replicas" not in (obj.get("spec") or {}))


def owns_replicas(live: Mapping[str, Any], manager: str) -> bool:
    """Whether `manager`'s server-side applies own spec.replicas of the live object (its managedFields)."""
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if (entry.get("manager") == manager and entry.get("operation") == "Apply"
                and "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})):
            return True
    return False


def _rv(obj: Mapping[str, Any]) -> int:
    raw = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return int(raw) if str(raw).isdigit() else 0


@dataclass
class WriteCounter:
    """Counts requests that change state; the tests and benchmarks read it."""

    applies: int = 0
    deletes: int = 0
    status_patches: int = 0

    @property
    def writes(self) -> int:
        return self.applies + self.deletes + self.status_patches


class Kube:
    """The operator's only way to write to the API server."""

    def __init__(self, api: client.ApiClient, field_manager: str = FIELD_MANAGER, timeout: float = 10.0,
                 fence: Callable[[], bool] | None = None, concurrency: int = 32):
        self._api = api
        self.throttle = Throttle(concurrency, floor=max(1, concurrency // 8))
        """At most this many requests in progress, down to an eighth of it while the server answers 429
        (adapters.throttle)."""
        self.fence = fence
        """Asked before every write (and every retry of one): False refuses it with FencedError. The
        runtime passes the leader elector's `holds`, so a replica past its renew deadline (say, one
        that was frozen and woke up after a standby took over) sends nothing."""
        self.clock = ServerClock()
        """The API server's time, learnt from the Date header of every response (see server_clock)."""
        self.after_write: Callable[[str, str, Any], None] | None = None
        """Called with (method, path, body) after each successful write; only the crash-matrix tests
        set it (tollgate.runtime.faults)."""
        self._field_manager = field_manager
        self._timeout = timeout
        self._applied: dict[ObjectRef, str] = {}
        self._live: dict[ObjectRef, tuple[int, str]] = {}
        """(resourceVersion, live_fingerprint) of each object as our last apply (or the start-up LIST)
        left it: a watch event with a newer resourceVersion and another fingerprint is someone else's
        change (see `observe`)."""
        self._inflight: set[ObjectRef] = set()
        self._warm = False
        self._listed: set[str] = set()
        """Kinds whose every managed object was listed at start: one absent from the cache does not exist."""
        self._lock = threading.Lock()
        self.counter = WriteCounter()

    # -- low level ------------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
              query: list[tuple[str, str]] | None = None, conditional: bool = False) -> Any:
        """One request, retried (api_retry); failures leave as adapters.errors types, never ApiException.
        `conditional`: the body carries a resourceVersion precondition, so a 409 is a ConflictError at once."""
        if method != "GET" and self.fence is not None and not self.fence():
            raise FencedError(f"{method} {path} refused: this replica does not hold the leader Lease")
        # One place in the throttle's window for the request and its retries (waiting out a Retry-After in
        # it): the window then bounds the 429s per second, not only the attempts in flight.
        with self.throttle.slot() as ticket:
            try:
                return self._request(method, path, body, content_type=content_type, query=query,
                                     conditional=conditional, ticket=ticket)
            except CLIENT_ERRORS as exc:
                raise translate(exc) from exc

    @api_retry
    def _request(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
                 query: list[tuple[str, str]] | None = None, conditional: bool = False,
                 ticket: Ticket | None = None) -> Any:
        return self._send(method, path, body, content_type=content_type, query=query, conditional=conditional,
                          ticket=ticket)

    def _send(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
              query: list[tuple[str, str]] | None = None, conditional: bool = False,
              ticket: Ticket | None = None) -> Any:
        """One request, no retry (a 409 from a create is an answer, not a hiccup); fenced like every write."""
        if method != "GET" and self.fence is not None and not self.fence():  # and before every retry
            raise FencedError(f"{method} {path} refused: this replica does not hold the leader Lease")
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        wire = body
        if body is not None and content_type and "json" not in content_type:
            # JSON is YAML: the apply-patch+yaml body goes as bytes, serialised once (the client passes bytes
            # through untouched; a dict would be walked by sanitize_for_serialization and dumped again)
            wire = json_codec.dumps(body)
        method_, url, headers_, body_, post = self._api.param_serialize(
            method=method, resource_path=path, query_params=query or [], header_params=headers,
            body=wire, auth_settings=["BearerToken"],
        )
        # `ticket`: the place _call holds across the retries; without one (a create), a place for this attempt
        with nullcontext(ticket) if ticket is not None else self.throttle.slot() as held:
            self.throttle.sent(held)
            sent = time.monotonic()
            resp = self._api.call_api(method_, url, headers_, body_, post, _request_timeout=self._timeout)
            self.clock.sample(sent, time.monotonic(), resp.getheader("Date"))  # type: ignore[no-untyped-call]
            resp.read()  # type: ignore[no-untyped-call]
            self.throttle.answered(held, throttled=resp.status == 429)
        if not 200 <= resp.status < 300:
            if resp.status == 409 and conditional:
                raise ConflictError(f"{method} {path}: the object changed since it was read")
            raise ApiException(http_resp=resp)
        if method != "GET" and self.after_write is not None:
            self.after_write(method, path, body)
        return json_codec.loads(resp.data) if resp.data else {}

    def pages(self, path: str,
              query: list[tuple[str, str]] | None = None) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """A LIST a page at a time: (items, the list's resourceVersion), LIST_PAGE items at most each. The
        pages share one snapshot (the server's `continue` token), so a LIST paged is the same LIST held
        whole, a page at a time; a token that expired mid-way fails like any request (410, a KubeError)."""
        query = [*(query or []), ("limit", str(LIST_PAGE))]
        token = ""
        while True:
            data = self._call("GET", path, query=[*query, ("continue", token)] if token else query)
            meta = data.get("metadata") or {}
            yield data.get("items") or [], _rv(data)
            token = meta.get("continue") or ""
            if not token:
                return

    def list_all(self, api_version: str, plural: str, namespace: str | None = None,
                 keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """Every object of a kind (in one namespace, or cluster-wide), or only those `keep` accepts (judged
        a page at a time, so the others are never all held); [] when the kind is not served."""
        base = api_base(api_version)
        path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
        try:
            return [item for items, _ in self.pages(path) for item in items if keep is None or keep(item)]
        except NotFoundError:
            return []

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._call("GET", path_of(ref))
            return obj
        except NotFoundError:
            return None

    def list(self, ref: ObjectRef, label_selector: str) -> list[dict[str, Any]]:
        data = self._call("GET", collection_path_of(ref), query=[("labelSelector", label_selector)])
        items: list[dict[str, Any]] = data.get("items", [])
        return items

    # -- apply ----------------------------------------------------------------------------------
    def apply(self, obj: Mapping[str, Any], *, force: bool = True, read_first: bool = True) -> bool:
        """Server-side apply `obj` unless it is already applied as desired. Returns True if it wrote.

        read_first=False: never GET it first (a kind the operator may write but not read)."""
        ref = ref_of(obj)
        digest = manifest_hash(obj)
        with self._lock:
            known = self._applied.get(ref)
        if known == digest:
            return False
        if known is None and not self._warm and read_first:
            live = self.get(ref)
            live_hash = ((live or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION_HASH)
            if live is not None and live_hash == digest:
                with self._lock:
                    self._applied[ref] = digest
                return False
        body = json_codec.copy(obj)
        body["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = digest
        if hands_over_replicas(obj):
            self._hand_over_replicas(ref)
        with self._lock:
            self._inflight.add(ref)  # its own watch event may arrive before the response
        try:
            written = self._call("PATCH", path_of(ref), body, content_type="application/apply-patch+yaml",
                                 query=[("fieldManager", self._field_manager),
                                        ("force", "true" if force else "false")])
        finally:
            with self._lock:
                self._inflight.discard(ref)
        self.counter.applies += 1
        with self._lock:
            self._applied[ref] = digest
            if written:
                self._live[ref] = (_rv(written), live_fingerprint(written))
        log.info("applied", extra={"kind": ref.kind, "namespace": ref.namespace, "object": ref.name})
        return True

    def _hand_over_replicas(self, ref: ObjectRef) -> None:
        """Before the first apply without replicas of a Deployment whose replicas Tollgate's own applies set
        (autoscaling was just turned on): the documented server-side-apply handover. Another manager
        (HANDOVER_MANAGER) applies the live count first, so when Tollgate's apply drops the field it stays
        as it is, owned by that manager and then by the autoscaler; without it the API server would reset
        replicas to 1 (a field removed by its only manager is removed) and the model would lose its pods
        until the autoscaler caught up. One GET; nothing more when Tollgate owns no replicas there."""
        live = self.get(ref)
        if live is None or not owns_replicas(live, self._field_manager):
            return
        count = (live.get("spec") or {}).get("replicas")
        if count is None:
            return
        meta = {"name": ref.name, "namespace": ref.namespace}
        self._call("PATCH", path_of(ref), {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": meta,
                                           "spec": {"replicas": count}},
                   content_type="application/apply-patch+yaml",
                   query=[("fieldManager", HANDOVER_MANAGER), ("force", "false")])
        self.counter.applies += 1
        log.info("replicas handed over to the autoscaler", extra={"namespace": ref.namespace, "object": ref.name,
                                                                  "replicas": count})

    def exists(self, ref: ObjectRef) -> bool:
        """Whether an object we manage exists: from the cache once warm (no request), else one GET."""
        with self._lock:
            if ref in self._applied:
                return True
            if ref.kind in self._listed:
                return False
        return self.get(ref) is not None

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """POST `obj` (with its applied hash, as apply would write it). None when the name is taken:
        unlike a server-side apply, a create never takes over an object somebody else made."""
        ref = ref_of(obj)
        digest = manifest_hash(obj)
        body = json_codec.copy(obj)
        body["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = digest
        with self._lock:
            self._inflight.add(ref)  # its own watch event may arrive before the response
        try:
            created: dict[str, Any] = self._send("POST", collection_path_of(ref), body,
                                                 content_type="application/json",
                                                 query=[("fieldManager", self._field_manager)])
        except CLIENT_ERRORS as exc:
            error = translate(exc)
            if isinstance(error, ConflictError):
                return None
            raise error from exc
        finally:
            with self._lock:
                self._inflight.discard(ref)
        self.counter.applies += 1
        with self._lock:
            self._applied[ref] = digest
            if created:
                # The baseline drift is judged against: what we created, not the first watch event
                # that happens to arrive (a hand edit right after the create, e.g. Pod Security lifted
                # on a new sandbox, would otherwise become the baseline and never be restored).
                self._live[ref] = (_rv(created), live_fingerprint(created))
        log.info("created", extra={"kind": ref.kind, "namespace": ref.namespace, "object": ref.name})
        return created

    def is_applied(self, obj: Mapping[str, Any]) -> bool:
        """True when `obj` is known to be live exactly as desired (its applied hash matches)."""
        with self._lock:
            return self._applied.get(ref_of(obj)) == manifest_hash(obj)

    def warm(self, kinds: Iterable[tuple[str, str]], label_selector: str,
             seen: Callable[[str, dict[str, Any]], None] | None = None, *, namespace: str | None = None) -> int:
        """Learn the applied hash of every object we manage, kind by kind, a page at a time (`listing`,
        `learn`, `warmed`; runtime.app.learn_managed runs the same steps with the kinds side by side).

        After a restart this replaces one GET per object per ModelDeployment (10,000 GETs for 1,000
        ModelDeployments) with a few LISTs; an object absent from the lists is then known to need
        applying, so no GET precedes its apply either. `seen(kind, item)` gets every listed object.

        `namespace`: only that namespace's objects (and the Namespace itself): a sandbox learnt ahead of
        the rest, so the object changed while the operator was down is decided before the LISTs of
        everything (runtime.handlers.decide_changed_first). Partial knowledge: an object absent from these
        lists is not known to be absent, so applies elsewhere still read first until the full warm.
        """
        kinds = tuple(kinds)
        learnt = 0
        for kind in kinds:
            for page in self.listing(kind, label_selector, namespace=namespace):
                if seen is not None:
                    for item in page:
                        seen(kind[1], item)
                learnt += self.learn(kind, page)
        if namespace is None:
            self.warmed(kinds)
        return learnt

    def listing(self, kind: tuple[str, str], label_selector: str, *,
                namespace: str | None = None) -> Iterator[builtins.list[dict[str, Any]]]:
        """Our objects of one (apiVersion, kind), a page at a time, each item with its apiVersion and kind;
        nothing when the kind is not served here (e.g. no Gateway API: none of ours). `namespace`: only
        there (for the Namespace kind: that Namespace, by name)."""
        api_version, name = kind
        base = api_base(api_version)
        plural, namespaced = _KINDS[name]
        query = [("labelSelector", label_selector)]
        if namespace is None:
            path = f"{base}/{plural}"
        elif namespaced:
            path = f"{base}/namespaces/{namespace}/{plural}"
        else:
            path, query = f"{base}/{plural}", [*query, ("fieldSelector", f"metadata.name={namespace}")]
        try:
            for items, _ in self.pages(path, query):
                for item in items:
                    item.setdefault("apiVersion", api_version)
                    item.setdefault("kind", name)
                yield items
        except NotFoundError:
            return

    def learn(self, kind: tuple[str, str], items: Iterable[Mapping[str, Any]]) -> int:
        """The applied hash and live fingerprint of each listed object that carries our hash (how many).
        What a write of ours recorded meanwhile is kept: it is newer than the LIST."""
        api_version, name = kind
        namespaced = _KINDS[name][1]
        learnt: builtins.list[tuple[ObjectRef, str, tuple[int, str]]] = []
        for item in items:
            meta = item.get("metadata", {})
            digest = (meta.get("annotations") or {}).get(ANNOTATION_HASH)
            if digest:
                ref = interned(api_version, name, meta["name"], meta.get("namespace") if namespaced else None)
                learnt.append((ref, digest, (_rv(item), live_fingerprint(item))))
        with self._lock:
            for ref, digest, live in learnt:
                self._applied.setdefault(ref, digest)
                self._live.setdefault(ref, live)
        return len(learnt)

    def warmed(self, kinds: Iterable[tuple[str, str]]) -> None:
        """Every managed object of these kinds was listed and learnt: one absent from the cache does not exist."""
        with self._lock:
            self._warm = True
            self._listed.update(kind for _, kind in kinds)

    def resync(self, kinds: Iterable[tuple[str, str]], label_selector: str) -> tuple[ObjectRef, ...]:
        """After a watch re-listed (its resourceVersion had expired during an outage), deletions made
        meanwhile produce no event: one LIST per kind finds objects we applied that are gone. Those are
        dropped from the cache and returned; objects written after the LIST's snapshot are left alone."""
        gone: set[ObjectRef] = set()
        for api_version, kind in kinds:
            plural, namespaced = _KINDS[kind]
            base = api_base(api_version)
            listed: set[ObjectRef] = set()
            snapshot = 0  # the LIST's resourceVersion: every page carries the same
            try:
                for items, rv in self.pages(f"{base}/{plural}", [("labelSelector", label_selector)]):
                    snapshot = rv
                    listed.update(ObjectRef(api_version, kind, i["metadata"]["name"],
                                            i["metadata"].get("namespace") if namespaced else None) for i in items)
            except NotFoundError:
                continue
            with self._lock:
                for ref, (rv, _) in tuple(self._live.items()):
                    if (ref.kind == kind and ref not in listed and ref not in self._inflight
                            and (not snapshot or rv <= snapshot)):
                        self._live.pop(ref, None)
                        if self._applied.pop(ref, None) is not None:
                            gone.add(ref)
        return tuple(gone)

    def forget(self, ref: ObjectRef) -> None:
        """Drop the cached hash, e.g. when a watch shows the object was changed or deleted."""
        with self._lock:
            self._applied.pop(ref, None)
            self._live.pop(ref, None)

    def observe(self, obj: Mapping[str, Any], *, deleted: bool) -> str | None:
        """A watch event of an object we manage: 'deleted' or 'changed' when someone else removed or
        edited what we applied (the cached hash is then dropped, so the next apply writes it again);
        None for our own writes, controllers' status updates and stale events.

        This is what keeps the skip-if-unchanged cache honest while the operator runs: without it an
        object deleted by hand stayed deleted until a restart, because the cache said it was applied.
        """
        try:
            ref = ref_of(obj)
        except KeyError:
            return None
        if ref.kind not in _KINDS:
            return None
        if not _KINDS[ref.kind][1]:
            ref = interned(ref.api_version, ref.kind, ref.name, None)
        rv = _rv(obj)
        with self._lock:
            if ref in self._inflight:
                return None  # our own write, racing its response; the response sets the baseline
            known = self._applied.get(ref)
            base = self._live.get(ref)
            if deleted:
                self._live.pop(ref, None)
                if known is None:
                    return None  # our own delete (delete() forgot it first), or never ours to keep
                self._applied.pop(ref, None)
                return "deleted"
            if base is None:
                if known is not None:
                    self._live[ref] = (rv, live_fingerprint(obj))
                return None
            if rv and rv <= base[0]:
                return None  # older than, or the echo of, what we know (every listing event after a
                # restart: the start-up LIST saw the same versions), so nothing is hashed for it
            fingerprint = live_fingerprint(obj)
            self._live[ref] = (rv, fingerprint)
            if fingerprint == base[1]:
                return None
            self._applied.pop(ref, None)
            return "changed"

    def delete(self, ref: ObjectRef, *, propagation: str = "Background") -> bool:
        """Delete if present. Returns True if a delete was sent and accepted."""
        self.forget(ref)
        try:
            self._call("DELETE", path_of(ref), {"propagationPolicy": propagation},
                       content_type="application/json")
        except NotFoundError:
            return False
        self.counter.deletes += 1
        return True

    # -- Events -----------------------------------------------------------------------------------
    def post_event(self, involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `involved`, as kopf posts them (kopf.event), sent directly.

        Used where kopf's event queue is not reachable: a reconcile loop started at start-up, before
        kopf's watches, has no kopf context (runtime.app). Failures are logged, not raised: an Event
        is a report, and a decision must not fail for it (kopf's poster behaves the same)."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = self.clock.now().isoformat()
        body = {
            "metadata": {"namespace": namespace, "generateName": "kopf-event-"},
            "action": "Action?", "type": type_, "reason": reason, "message": message[:1000],
            "reportingComponent": "kopf", "reportingInstance": "dev", "source": {"component": "kopf"},
            "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                               "name": meta.get("name"), "uid": meta.get("uid"), "namespace": namespace},
            "firstTimestamp": now, "lastTimestamp": now, "eventTime": now,
        }
        try:
            self._call("POST", f"/api/v1/namespaces/{namespace}/events", body, content_type="application/json")
        except KubeError as exc:
            log.warning("could not post an Event", extra={"reason": reason, "object": meta.get("name"),
                                                          "error": str(exc)[:300]})

    # -- the ModelDeployment's status ------------------------------------------------------------
    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any],
                     resource_version: str | None = None) -> dict[str, Any]:
        """Merge-patch the status subresource (nulls remove fields); returns the object as written.

        With `resource_version` the write is optimistic: if the object changed since that version (a
        newer spec, an annotation, or another replica's status) the server refuses it with 409 and this
        raises ConflictError, so a stale decision is never written over a newer one."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        out: dict[str, Any] = self._call("PATCH", path, body, content_type="application/merge-patch+json",
                                         conditional=bool(resource_version))
        self.counter.status_patches += 1
        out.get("metadata", {}).pop("managedFields", None)  # kept in memory per object: drop the bulk
        return out


    def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (routers use it to move traffic without a full apply)."""
        self.forget(ref)
        self._call("PATCH", path_of(ref), dict(patch), content_type="application/merge-patch+json",
                   query=[("fieldManager", self._field_manager)])
        self.counter.applies += 1

    def patch_scale(self, ref: ObjectRef, replicas: int) -> None:
        """Set replicas through the scale subresource (the replicas router's fast path)."""
        self.forget(ref)
        self._call("PATCH", path_of(ref) + "/scale", {"spec": {"replicas": replicas}},
                   content_type="application/merge-patch+json", query=[("fieldManager", self._field_manager)])
        self.counter.applies += 1
