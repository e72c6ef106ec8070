"""The dashboard's web application (Starlette): pages, their live fragments, chart data and controls.

Pages are rendered on the server with Jinja2 (escaping on) from the Store, which one watch keeps
current; `/events` streams the key of each changed object (Server-Sent Events) and the page's script
fetches just the fragment that changed. Chart data comes from Prometheus through the operator's
adapter. Plotly's script is served from the installed plotly package, so the page works offline.

Controls are POSTs that carry the per-process token embedded in the page: another web site open in
the same browser cannot forge them (it cannot read the token, and the custom header forces a CORS
preflight nobody answers). Requests whose Host is not the address served are refused, which defeats
DNS rebinding.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tollgate.adapters.slo_series import SLOSeries
from tollgate.cli import view
from tollgate.cli.cluster import Session
from tollgate.cli.dashboard import charts, controls, views
from tollgate.cli.dashboard.store import ALL, Problem, Store, problem_of
from tollgate.cli.errors import CliError, Exit
from tollgate.engine.observations import AnalysisRequest

SeriesSource = Callable[[AnalysisRequest, float, float], Sequence[SLOSeries]]
"""Blocking: one ModelDeployment's SLO series over [start, end] (PrometheusProvider.series)."""

TOKEN_HEADER = "X-Tollgate-Token"
PACKAGE = "tollgate.cli.dashboard"


def plotly_js() -> Path:
    """plotly.min.js as the installed plotly package ships it (never fetched, never vendored here)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install 'tollgate[dashboard]'`")
    return path


@dataclass
class Settings:
    session: Session
    store: Store
    series: SeriesSource | None
    prometheus: str | None
    """The Prometheus URL in words (credentials never included), or None when none is configured."""
    read_only: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    evidence_cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def _environment() -> Environment:
    env = Environment(loader=PackageLoader(PACKAGE, "templates"), autoescape=select_autoescape(["html"]))
    env.filters["number"] = view.number
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
    env.filters["step"] = lambda i: int(i or 0) + 1
    return env


def create_app(settings: Settings) -> Starlette:
    env = _environment()
    store = settings.store

    def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        now = settings.clock()
        html = env.get_template(template).render(
            now=now, age=lambda at: view.age(at, now), token=settings.token, read_only=settings.read_only,
            scope=store.scope, prometheus=settings.prometheus, **context)
        return HTMLResponse(html, status_code=status_code)

    def problem_page(problem: Problem) -> HTMLResponse:
        return render("error.html", status_code=problem.code, problem=problem)

    async def evidence(obj: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """The record named by status.lastIncident (records never change: read once), or why not."""
        ns = str(view.meta(obj).get("namespace"))
        name = view.status_of(obj).get("lastIncident")
        if not name:
            return None, None
        key = (ns, str(name))
        if key not in settings.evidence_cache:
            try:
                settings.evidence_cache[key] = await run_in_threadpool(settings.session.evidence, ns, str(name))
            except CliError as exc:
                return None, exc.message
        return settings.evidence_cache[key], None

    def listing(request: Request) -> HTMLResponse:
        if store.problem is not None and not store.objects:
            return problem_page(store.problem)
        rows = views.list_rows(list(store.objects.values()), settings.clock())
        template = "_list.html" if request.query_params.get("fragment") else "list.html"
        return render(template, rows=rows, synced=store.synced, problem=store.problem)

    async def detail(request: Request) -> HTMLResponse:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        obj = store.get(ns, name)
        if obj is None:
            if store.problem is not None:
                return problem_page(store.problem)
            if not store.synced:
                return render("error.html", status_code=503, problem=Problem(
                    "Loading", "the first list of ModelDeployments has not arrived yet", "reload in a moment", 503))
            return problem_page(Problem(f"{ns}/{name} not found",
                                        f'no ModelDeployment "{name}" in namespace "{ns}" among those you can read '
                                        f"({store.scope})", "check the name and namespace, or go back to the list",
                                        404))
        record, record_error = await evidence(obj)
        template = "_detail.html" if request.query_params.get("fragment") else "detail.html"
        return render(template, md=views.detail(obj, settings.clock()), ns=ns, name=name,
                      buttons=[] if settings.read_only else controls.buttons(obj),
                      evidence=views.evidence_view(record) if record else None, evidence_error=record_error,
                      problem=store.problem)

    async def series(request: Request) -> JSONResponse:
        ns, name = request.path_params["namespace"], request.path_params["name"]
        obj = store.get(ns, name)
        if obj is None:
            return JSONResponse({"error": f"{ns}/{name} is not among the ModelDeployments you can read"}, 404)
        if settings.series is None:
            return JSONResponse({"error": "no Prometheus configured: start the dashboard with --prometheus-url "
                                          "(the URL the operator's --prometheus-url points at)"}, 503)
        record, _ = await evidence(obj)
        p = charts.plan(obj, settings.clock(), record)
        if p is None:
            return JSONResponse({"error": "the spec does not parse, so its SLOs are unknown"}, 422)
        resolved, unmeasured = await run_in_threadpool(charts.with_templates, p, settings.session.slo_template)
        got = await run_in_threadpool(settings.series, resolved.request, resolved.start, resolved.end)
        got = (*got, *(SLOSeries(name, error=why) for name, why in unmeasured.items()))
        data = charts.charts(obj, resolved, got, record)
        errors = {c["error"] for c in data["charts"] if c["error"]}
        if errors and len(errors) == len(data["charts"]):
            data["error"] = (f"Prometheus at {settings.prometheus} did not answer: {sorted(errors)[0]}. "
                             "Check that it is reachable from this machine (--prometheus-url).")
            return JSONResponse(data, 502)
        return JSONResponse(data)

    async def control(request: Request) -> JSONResponse:
        if settings.read_only:
            return JSONResponse({"error": "the dashboard runs with --read-only: controls are off"}, 403)
        if not secrets.compare_digest(request.headers.get(TOKEN_HEADER, ""), settings.token):
            return JSONResponse({"error": f"missing or wrong {TOKEN_HEADER}: reload the page"}, 403)
        ns, name, which = (request.path_params[k] for k in ("namespace", "name", "control"))
        if which not in controls.ANNOTATIONS and which not in controls.TOGGLES:
            return JSONResponse({"error": f"unknown control {which!r}"}, 404)
        try:
            done = await run_in_threadpool(controls.run, settings.session, ns, name, which, settings.clock())
        except CliError as exc:
            status = {Exit.NOT_APPLICABLE: 409, Exit.FORBIDDEN: 403, Exit.NOT_FOUND: 404,
                      Exit.UNREACHABLE: 502}.get(exc.code, 500)
            return JSONResponse({"error": exc.message}, status)
        return JSONResponse({"ok": True, **asdict(done)})

    async def events(request: Request) -> EventSourceResponse:
        queue = store.subscribe()

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"event": "change", "data": ALL}
                while True:
                    try:
                        key = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        continue
                    yield {"event": "change", "data": key}
            finally:
                store.unsubscribe(queue)

        return EventSourceResponse(stream(), ping=10)

    async def plotly(_: Request) -> Response:
        try:
            return FileResponse(plotly_js(), media_type="text/javascript")
        except FileNotFoundError as exc:
            return Response(f"// {exc}", status_code=500, media_type="text/javascript")

    static = resources.files(PACKAGE) / "static"
    routes = [
        Route("/", listing),
        Route("/md/{namespace}/{name}", detail),
        Route("/md/{namespace}/{name}/series", series),
        Route("/md/{namespace}/{name}/controls/{control}", control, methods=["POST"]),
        Route("/events", events),
        Route("/static/plotly.min.js", plotly),
        Mount("/static", StaticFiles(directory=str(static)), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))]
    return Starlette(routes=routes, middleware=middleware)


__all__ = ["Settings", "create_app", "problem_of"]
