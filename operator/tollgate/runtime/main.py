"""Entrypoint `tollgate-operator` (also `python -m tollgate`)."""

from __future__ import annotations

import copy
import json
import logging
import sys
from typing import Any

import kopf
from kopf._core.engines.daemons import DaemonsMemory
from kopf._core.engines.indexing import IndexingMemory
from kopf._core.reactor.inventory import ResourceMemories, ResourceMemory
from prometheus_client import start_http_server

import tollgate.runtime.handlers  # registers the kopf handlers that kopf.run serves
import tollgate.runtime.kopf_fixes
from tollgate.runtime.app import Runtime
from tollgate.runtime.collector import settle_after_startup
from tollgate.runtime.config import Settings, parse
from tollgate.runtime.malloc import tune_malloc

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# kopf attaches its whole OperatorSettings (and object references) to every record; rendering them costs
# more CPU than the handler itself at a thousand objects, and says nothing the message does not.
_SKIPPED = {"settings", "k8s_skip", "k8s_ref"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields become keys. Credentials are never passed to logs."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _STANDARD and k not in _SKIPPED and not k.startswith("_"):
                out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # "Handler ... succeeded" for every watch event of every object: noise at scale, and CPU.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class SharedMemo(kopf.Memo):
    """The operator's memo, shared by every object instead of copied into each.

    kopf gives each watched object (every ModelDeployment, child and pod: ~11 per ModelDeployment) a
    shallow copy of the operator's memo, for handlers that keep per-object values in it. No handler here
    does (the runtime keeps its own registry), and the copies cost ~0.6 KB each (bench/README.md)."""

    def __copy__(self) -> SharedMemo:
        return self


class CompactMemories(ResourceMemories):
    """kopf's per-object memories, without the parts no handler here uses.

    kopf keeps one ResourceMemory for every watched object (each ModelDeployment, its ~9 children and its
    pods: ~11 per ModelDeployment), each with its own daemons memory (an empty set, an empty dict, a
    timestamp) and indexing memory: ~0.74 KB per object, of which ~0.49 KB is those two (bench/README.md).
    kopf writes them only for objects of kinds with daemons, timers or indexers, which Tollgate does not
    register: so every object shares one empty instance of each, and keeps its own error throttler, patch
    and flags as before. The constructor refuses a registry that has any of those handlers, where
    sharing them would mix objects' daemons."""

    def __init__(self, registry: kopf.OperatorRegistry) -> None:
        super().__init__()
        spawning = registry._spawning.get_all_handlers()
        indexing = registry._indexing.get_all_handlers()
        if spawning or indexing:
            raise ValueError(
                f"CompactMemories shares one daemons and indexing memory between objects, but the registry has "
                f"{len(spawning)} daemon/timer and {len(indexing)} index handlers "
                f"({', '.join(h.id for h in (*spawning, *indexing))}): use kopf's ResourceMemories instead")
        self._daemons: DaemonsMemory | None = None  # made on first use: its timestamp needs the event loop
        self._indexing = IndexingMemory()

    async def recall(self, raw_body: kopf.RawBody, *, memobase: Any = None, noticed_by_listing: bool = False,
                     ephemeral: bool = False) -> ResourceMemory:
        """kopf's recall (ResourceMemories.recall), with the shared daemons and indexing memories."""
        key = self._build_key(raw_body)
        memory = self._items.get(key)
        if memory is not None:
            return memory
        if self._daemons is None:
            self._daemons = DaemonsMemory()
        daemons, indexing = self._daemons, self._indexing
        memory = (ResourceMemory(noticed_by_listing=noticed_by_listing, daemons_memory=daemons,
                                 indexing_memory=indexing) if memobase is None else
                  ResourceMemory(noticed_by_listing=noticed_by_listing, daemons_memory=daemons,
                                 indexing_memory=indexing, memo=copy.copy(memobase)))
        if not ephemeral:
            self._items[key] = memory
        return memory


def build_memo(settings: Settings) -> kopf.Memo:
    return SharedMemo(runtime=Runtime.from_settings(settings))


def run(settings: Settings) -> None:
    memo = build_memo(settings)
    tollgate.runtime.kopf_fixes.apply(direct=tollgate.runtime.handlers.direct_routes(memo.runtime))
    tollgate.runtime.handlers.watch_dialect(settings.gateway_dialect)
    settle_after_startup()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr="0.0.0.0")
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=settings.namespaces,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None,
        memo=memo,
        memories=CompactMemories(kopf.get_default_registry()),
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse(argv)
    tune_malloc()
    configure_logging(settings.log_format)
    logging.getLogger("tollgate").info(
        "starting", extra={"namespaces": ",".join(settings.namespaces) or "*",
                           "prometheus": bool(settings.prometheus_url),
                           "leader_election": settings.leader_election})
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
