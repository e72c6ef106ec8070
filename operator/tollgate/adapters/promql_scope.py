"""Tenant scoping of custom PromQL: a ModelDeployment's query may only read its own sandbox's series.

A custom SLO query (or a namespaced SLOTemplate) is written by the tenant who owns the ModelDeployment,
but Tollgate runs it with the operator's Prometheus credentials, which read every namespace. So, like
prom-label-proxy in front of a shared Prometheus, every series selector of the query must be pinned to
the ModelDeployment's sandbox: `namespace="<sandbox namespace>"`, an equality matcher on the label
Prometheus sets from the pod's namespace at discovery (metric_profiles.Identity.sandbox), which a pod
cannot forge, unlike the labels copied from pod labels.

Why check rather than rewrite: prom-label-proxy injects the matcher into the parsed query and prints it
again. The PromQL parser available for Python (promql-parser, Prometheus' grammar ported to Rust) parses
every construct, but prints some back wrongly (`or` groups inside braces), and a query printed wrongly is
a query run unscoped or not at all. Checking the parsed tree and running the tenant's own text is exact:
each selector, in each `or` group of its braces, must carry the equality matcher. A query where one does
not is refused with a message naming the selector and the fix, and is never sent to Prometheus. Writing
`{{selector}}` (the exact matchers of the ModelDeployment's track) or `namespace="{{sandbox}}"` in every
selector is enough.

Built-in templates are written by the platform and are trusted; they select by namespace already.
"""

from __future__ import annotations

from dataclasses import dataclass

import promql_parser


class ScopeError(ValueError):
    """The query cannot be run for this tenant; the message says why and how to fix it."""


@dataclass(frozen=True)
class Scope:
    """The label matcher every selector must carry."""

    label: str
    value: str

    @property
    def matcher(self) -> str:
        return f'{self.label}="{self.value}"'


def _pinned(group: list[promql_parser.Matcher], scope: Scope) -> bool:
    return any(m.name == scope.label and m.op == promql_parser.MatchOp.Equal and m.value == scope.value
               for m in group)


def _selector_text(node: promql_parser.VectorSelector) -> str:
    text = str(node)
    return text if len(text) <= 120 else text[:117] + "..."


def check_scoped(promql: str, scope: Scope) -> None:
    """Raise ScopeError unless every series selector of `promql` selects only `scope` (see module doc)."""
    try:
        expr = promql_parser.parse(promql)
    except ValueError as exc:
        raise ScopeError(f"the query does not parse as PromQL ({exc}); fix its syntax") from exc
    unscoped: list[str] = []

    def visit(node: object) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        groups = node.matchers.or_matchers or [node.matchers.matchers]
        if not all(_pinned(list(group), scope) for group in groups):
            unscoped.append(_selector_text(node))

    promql_parser.walk(expr, visit)
    if unscoped:
        raise ScopeError(
            f"selector {unscoped[0]} is not limited to {scope.matcher}"
            + (f" (nor are {len(unscoped) - 1} more)" if len(unscoped) > 1 else "")
            + ": Tollgate only runs custom queries that read the ModelDeployment's own sandbox namespace; add "
            "{{selector}} (the exact matchers of the ModelDeployment's track) to every selector, e.g. "
            "rate(my_metric{ {{selector}} }[{{window}}])"
        )
