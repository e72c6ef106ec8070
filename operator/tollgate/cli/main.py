"""`kubectl tollgate`: watch and steer ModelDeployment rollouts from a terminal or a CI job.

Installed as the console script `kubectl-tollgate`, so kubectl finds it as a plugin. Reads go to the
API server; controls are merge patches of metadata.annotations or spec (never status) that the
operator acts on, exactly as if they came from Git.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import yaml

from tollgate.api import resource
from tollgate.api.controls import summary as control_summary
from tollgate.api.drills import DrillKind
from tollgate.cli import actions, drills, view
from tollgate.cli import controls as ctl
from tollgate.cli.cluster import Session, connect
from tollgate.cli.errors import CliError, Exit, exit_codes_text
from tollgate.engine.timeutil import parse_duration

PROG = "kubectl tollgate"


# ----------------------------------------------------------------------------------------------------
# Help texts: each command's --help says what it reads or writes, what the operator does, and examples.

OVERVIEW = f"""\
Watch and steer Tollgate rollouts (ModelDeployment, {resource.API_VERSION}).

Reads: get, status, history, evidence. Controls: {", ".join(c for c in ctl.ANNOTATION_CONTROLS if c != "step")},
promote --step (annotations tollgate.dev/<control>=<you>@<time>, step for --step, acted on once per
distinct value) and pause, resume, kill,
unkill (spec.paused, spec.killSwitch). Rehearsals: drill kill-switch|rollback (annotations
tollgate.dev/drill-kill-switch, tollgate.dev/drill-rollback). The plugin never writes status: the operator does, and
`status` shows what it did. Controls work from Git as well: commit the same annotation or field.

examples:
  kubectl tollgate get -A
  kubectl tollgate status fraud-scorer -n ml-team --watch
  kubectl tollgate approve fraud-scorer -n ml-team --wait
  kubectl tollgate evidence fraud-scorer -n ml-team -o json

Connection options (--kubeconfig, --context, -n) work before or after the command, like kubectl's.

{exit_codes_text()}
"""

HELP: dict[str, tuple[str, str]] = {
    "get": ("list ModelDeployments with phase, versions, canary weight and SLO health", """\
List ModelDeployments in a namespace (-n, else the context's namespace) or in all namespaces (-A):
phase, stable and canary versions, canary weight, current step and the worst SLO verdict of the
canary (Fail/Error/NoData/Inconclusive name the SLOs concerned; "Pass 2/2" when all pass).
Read-only. -o json|yaml prints the same rows as data.

examples:
  kubectl tollgate get
  kubectl tollgate get -A -o yaml
"""),
    "status": ("show a rollout in detail; --watch follows it until it ends", """\
Show one ModelDeployment: phase and message, stable/canary versions and weight, the step plan
with the current step marked (=>), each SLO's latest value against its threshold with its
verdict, the conditions, and the latest decisions of the operator (status.timeline). Read-only.

--watch redraws on every change until the rollout ends and exits with a code a CI job can use:
0 Succeeded/Stable, 7 RolledBack, 8 Stalled, 9 kill switch on (Fallback), 10 --timeout passed,
130 Ctrl-C. It only ends once the operator has observed the latest spec (observedGeneration), so
`kubectl apply -f md.yaml && kubectl tollgate status NAME --watch` waits for the new rollout.
When stdout is not a terminal, --watch prints one line per change and the full view at the end.

examples:
  kubectl tollgate status fraud-scorer
  kubectl tollgate status fraud-scorer --watch --timeout 30m
  kubectl tollgate status fraud-scorer -o json
"""),
    "promote": ("promote the canary: to 100% now (--full), or one step now (--step)", """\
--full writes tollgate.dev/promote=<you>@<time> on the ModelDeployment. The operator then skips
the remaining steps and analysis of the current canary: the stable track rolls to the canary's
revision, and once it is Ready the canary becomes stable (phase Succeeded, or Baking with a bake
window). SLOs are still judged while promoting; a failure there still rolls back.

--step writes tollgate.dev/step=<you>@<time>: the step the canary is at completes now, without
its remaining pause and analysis, and the next step's weight is set (at the last step, the
promotion starts). One step per invocation; an approval gate on the next step still waits for
`approve`, and a failing analysis still rolls back.

One of --full and --step is required: a bare `promote` (which in Argo Rollouts advances one step)
is refused with exit 2 rather than guessing. Steps without a gate advance on their own once their
pause and analysis pass.
Refused (exit 5, nothing written) when there is no canary, it is already promoting, or (--step)
the current step has not taken its weight yet. In a bake window, --full ends the window now.

examples:
  kubectl tollgate promote fraud-scorer --step
  kubectl tollgate promote fraud-scorer --full
  kubectl tollgate promote fraud-scorer --full --wait
"""),
    "approve": ("approve the approval gate the canary is waiting at", """\
Write tollgate.dev/approve=<you>@<time>. <you> is the user the API server authenticates you as
(SelfSubjectReview), else your kubeconfig context's user. The operator sets the weight of the
waiting step and records the token in status.approvedBy, so the approver is on the object and in
the timeline. A token only approves a gate that is waiting now: the operator ignores approvals
that arrive before a person could have seen the gate.
Refused (exit 5, nothing written) when no gate is waiting. While paused, the approval is kept and
takes effect on resume.

examples:
  kubectl tollgate approve fraud-scorer -n ml-team
  kubectl tollgate approve fraud-scorer --wait     # until the operator has acted
"""),
    "abort": ("roll the canary back now, with an evidence record", """\
Write tollgate.dev/abort=<you>@<time>. The operator takes the canary to 0% at once, puts all
traffic on stable, records an evidence ConfigMap (see `evidence`) and marks the revision rolled
back (phase RolledBack). It stays rolled back until the spec changes it or you `retry`.
Refused (exit 5, nothing written) when no rollout is in progress.

examples:
  kubectl tollgate abort fraud-scorer
"""),
    "retry": ("start the rolled-back revision again from step 1", """\
Write tollgate.dev/retry=<you>@<time>. The operator starts a new canary of the revision that was
rolled back, from step 1, without you faking a spec change.
Refused (exit 5, nothing written) when nothing is rolled back.

examples:
  kubectl tollgate retry fraud-scorer --wait
"""),
    "pause": ("hold the rollout where it is (spec.paused: true)", """\
Set spec.paused=true. The operator holds the weights where they are; analysis results do not
count and deadlines do not run. An approval given while paused is kept until resume.
Nothing is written when spec.paused is already true.

GitOps: this is a spec change. If Argo CD or Flux manages the object, it will revert it unless
the same change is committed to Git (the plugin warns when it sees their labels/annotations).

examples:
  kubectl tollgate pause fraud-scorer
"""),
    "resume": ("continue a paused rollout (spec.paused: false)", """\
Set spec.paused=false. The operator continues the rollout; the current step starts over (its
pause and analysis count again from now). Nothing is written when the spec is not paused.
GitOps: a spec change; commit it to Git if Argo CD or Flux manages the object.

examples:
  kubectl tollgate resume fraud-scorer
"""),
    "kill": ("send all traffic to the fallback now (spec.killSwitch: true)", """\
Set spec.killSwitch=true. Within seconds the operator takes the canary to 0% and removes it, and
sends all traffic to the fallback: spec.fallback, else status.lastKnownGood (phase Fallback).
With no fallback at all it reports Stalled and stable keeps serving.
Nothing is written when the kill switch is already on.
GitOps: a spec change; commit it to Git if Argo CD or Flux manages the object, or it is reverted.

examples:
  kubectl tollgate kill fraud-scorer
"""),
    "unkill": ("turn the kill switch off (spec.killSwitch: false)", """\
Set spec.killSwitch=false. The operator returns to normal routing; an interrupted canary restarts
at step 1. Nothing is written when the kill switch is already off.
GitOps: a spec change; commit it to Git if Argo CD or Flux manages the object.

examples:
  kubectl tollgate unkill fraud-scorer
"""),
    "drill": ("rehearse the kill switch or a rollback for real, and time it", """\
Write tollgate.dev/drill-kill-switch=<you>@<time> (or drill-rollback=<you>@<time>). The operator
rehearses the escape route on the live ModelDeployment and records the measured time to fallback in
status.lastDrill (shown by `status`), in the history and as its metric tollgate_drill_seconds.

  kill-switch  all traffic to the fallback (spec.fallback, else lastKnownGood), exactly as the kill
               switch does; timed until every request goes to the fallback with all its pods Ready;
               then traffic goes back where it was, timed too. Needs a fallback other than the
               version serving (pin spec.fallback) and no canary in progress.
  rollback     the running canary is rolled back as `abort` does (its evidence and history say
               DrillRolledBack); timed until every request goes to a fully Ready stable. The
               canary stays rolled back: `retry` starts it again from step 1. Needs a canary
               taking traffic.

Times run from the operator acting on the request to it observing the router (the Service's
selector, or the HTTPRoute's weights) send every request to the target track. A drill whose target
is not there within progressDeadline ends Failed: the route does not work, fix it before you need it.
Refused (exit 5, nothing written) when the route does not exist now; the message names the fix.
--wait waits for the outcome: exit 0 Passed, 5 Refused, 1 Failed or Interrupted, 10 timeout.

examples:
  kubectl tollgate drill kill-switch fraud-scorer --wait
  kubectl tollgate drill rollback fraud-scorer -n ml-team --wait --timeout 5m
"""),
    "history": ("list finished rollouts (promoted, rolled back, aborted, superseded)", """\
Print status.history, newest first: when each rollout ended, its version and revision, the result
(Promoted, RolledBack, Aborted, Superseded), the evidence record of a rollback and why it ended.
Read-only. -o json|yaml prints the entries as data.

examples:
  kubectl tollgate history fraud-scorer
"""),
    "dashboard": ("serve a local web page of every rollout, its steps, SLO charts and evidence", """\
Serve a web page on this machine (127.0.0.1:3100 by default) with your kubeconfig's credentials;
nothing is installed in the cluster. It shows the ModelDeployments you can read (all namespaces
when allowed, else -n or the context's namespace): phase, step, weight, risk tier, kstatus health
and the last incident; and for one ModelDeployment its steps as a timeline, each SLO as a chart of
canary against stable with its threshold and the moments of each verdict, the history and the
evidence of the last rollback. It follows one watch of the API server, so it is live.
Read-only until you confirm a control: the plugin's controls (approve, promote, abort, retry,
pause, resume, kill, unkill) are buttons that ask for confirmation, then write the same annotations
and fields as the commands; --read-only hides them. Charts query Prometheus (--prometheus-url,
else $TOLLGATE_PROMETHEUS_URL) with the operator's own queries, narrowed to that ModelDeployment.
Needs the dashboard extra: pip install 'tollgate[dashboard]'.

examples:
  kubectl tollgate dashboard --prometheus-url http://localhost:9090
  kubectl tollgate dashboard -n ml-team --port 0 --read-only
"""),
    "evidence": ("show the evidence record of the last rollback or abort", """\
Print the evidence the operator recorded when it last rolled back or aborted (status.lastIncident,
a ConfigMap next to the ModelDeployment, key evidence.json): why, at which step and weight, each
SLO's value, baseline, threshold and verdict, the queries as executed, the limits and the timeline.
--incident NAME shows an older record (see `history`). Read-only. -o json|yaml prints the record.

examples:
  kubectl tollgate evidence fraud-scorer
  kubectl tollgate evidence fraud-scorer -o json | jq .slos
"""),
}


# ----------------------------------------------------------------------------------------------------
# Argument parsing


def _connection_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("connection")
    group.add_argument("--kubeconfig", default=default, metavar="PATH",
                       help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    group.add_argument("--context", default=default, help="kubeconfig context (default: the current one)")
    group.add_argument("-n", "--namespace", default=default,
                       help="namespace (default: the context's namespace, else default)")


def _duration(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=PROG, description=OVERVIEW, formatter_class=fmt)
    _connection_options(parser, suppress=False)
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def sub(name: str) -> argparse.ArgumentParser:
        summary, text = HELP.get(name) or (control_summary(name).rstrip("."), "")
        description = f"{summary[0].upper()}{summary[1:]}.\n\n{text}"
        p = subs.add_parser(name, help=summary.replace("%", "%%"), description=description,
                            formatter_class=fmt, epilog=exit_codes_text())
        _connection_options(p, suppress=True)
        return p

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table",
                       help="table for people (default), json or yaml for scripts")

    def name(p: argparse.ArgumentParser) -> None:
        p.add_argument("name", metavar="NAME", help="the ModelDeployment")

    def wait(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait", action="store_true",
                       help="wait until the operator has handled the control and report the outcome")
        p.add_argument("--timeout", type=_duration, default=60.0, metavar="DURATION",
                       help="how long --wait waits, e.g. 60s or 2m (default 60s; exit 10 when it passes)")

    p = sub("get")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    output(p)

    p = sub("status")
    name(p)
    p.add_argument("-w", "--watch", action="store_true", help="redraw on every change until the rollout ends")
    p.add_argument("--timeout", type=_duration, default=None, metavar="DURATION",
                   help="with --watch: give up after this long, e.g. 30m (exit 10)")
    p.add_argument("--timeline", type=int, default=8, metavar="N", help="latest N timeline entries (default 8)")
    output(p)

    for control in ctl.ANNOTATION_CONTROLS:
        if control == "step":
            continue  # `promote --step`
        p = sub(control)
        name(p)
        if control == "promote":
            how = p.add_mutually_exclusive_group()
            how.add_argument("--full", action="store_true",
                             help="promote to 100%% now, skipping the remaining steps")
            how.add_argument("--step", action="store_true",
                             help="complete the current step now and enter the next one (tollgate.dev/step)")
        wait(p)
    for toggle in ("pause", "resume", "kill", "unkill"):
        name(sub(toggle))

    p = sub("drill")
    p.add_argument("kind", choices=[k.value for k in DrillKind], metavar="KIND",
                   help="kill-switch or rollback")
    name(p)
    wait(p)

    p = sub("history")
    name(p)
    output(p)

    p = sub("dashboard")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: only this machine can open the page)")
    p.add_argument("--port", type=int, default=3100, help="port (default 3100; 0 takes a free one)")
    p.add_argument("--prometheus-url", metavar="URL",
                   help="Prometheus the operator queries, reachable from here (default $TOLLGATE_PROMETHEUS_URL)")
    p.add_argument("--read-only", action="store_true", help="no control buttons")

    p = sub("evidence")
    name(p)
    p.add_argument("--incident", metavar="RECORD", help="an older evidence record (default: status.lastIncident)")
    output(p)
    return parser


# ----------------------------------------------------------------------------------------------------
# Output


class Out:
    def __init__(self, stdout: TextIO, stderr: TextIO, color: bool | None = None):
        self.stdout = stdout
        self.stderr = stderr
        self.tty = stdout.isatty()
        use_color = self.tty and not os.environ.get("NO_COLOR") if color is None else color
        self.style = view.Style(color=use_color)

    def print(self, text: str = "") -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def warn(self, text: str) -> None:
        self.stderr.write(f"warning: {text}\n")
        self.stderr.flush()

    def data(self, value: Any, fmt: str) -> None:
        if fmt == "json":
            self.print(json.dumps(value, indent=2, sort_keys=False, default=str))
        else:
            self.print(yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip())


def _now() -> datetime:
    return datetime.now(UTC)


# ----------------------------------------------------------------------------------------------------
# Commands


def cmd_get(s: Session, args: argparse.Namespace, out: Out) -> int:
    items = s.list(None if args.all_namespaces else s.namespace)
    items.sort(key=lambda o: (view.meta(o).get("namespace") or "", view.meta(o).get("name") or ""))
    rows = [view.summary(o, _now()) for o in items]
    if args.output != "table":
        out.data(rows, args.output)
    elif not rows:
        where = "any namespace" if args.all_namespaces else f'namespace "{s.namespace}"'
        out.stderr.write(f"No ModelDeployments found in {where}.\n")
    else:
        out.print(view.render_get(rows, args.all_namespaces, out.style))
    return Exit.OK


def cmd_status(s: Session, args: argparse.Namespace, out: Out) -> int:
    obj = s.get(s.namespace, args.name)
    if not args.watch:
        v = view.status_view(obj, _now(), args.timeline)
        if args.output != "table":
            out.data(v, args.output)
        else:
            out.print(view.render_status(v, _now(), out.style))
        return Exit.OK
    return _watch(s, args, out, obj)


def _watch(s: Session, args: argparse.Namespace, out: Out, obj: dict[str, Any]) -> int:
    deadline = time.monotonic() + args.timeout if args.timeout else None
    last: str | None = None

    def draw(o: dict[str, Any], final: bool = False) -> None:
        nonlocal last
        v = view.status_view(o, _now(), args.timeline)
        if args.output != "table":
            text = json.dumps(v, default=str) if args.output == "json" else "---\n" + yaml.safe_dump(v).rstrip()
            compare = json.dumps({**v, "age": None}, default=str)
            if compare != last:
                out.print(text)
            last = compare
        elif out.tty:
            footer = "" if final else f"\n\nwatching {s.namespace}/{args.name} (Ctrl-C to stop)"
            out.stdout.write("\x1b[H\x1b[2J" + view.render_status(v, _now(), out.style) + footer + "\n")
            out.stdout.flush()
        else:
            line = view.progress_line(v)
            if line != last:
                out.print(f"{_now().strftime('%H:%M:%S')} {line}")
            last = line
            if final:
                out.print("")
                out.print(view.render_status(v, _now(), out.style))

    draw(obj)
    while True:
        outcome = view.watch_outcome(obj)
        if outcome is not None:
            if out.tty or args.output == "table":
                draw(obj, final=True)
            phase = view.status_of(obj).get("phase")
            out.stderr.write(f"{args.name}: rollout ended {phase}\n")
            return int(outcome)
        remaining = (deadline - time.monotonic()) if deadline is not None else 30.0
        if remaining <= 0:
            raise CliError(f"--timeout passed while {args.name} is {view.status_of(obj).get('phase')}", Exit.TIMEOUT)
        rv = str(view.meta(obj).get("resourceVersion") or "0")
        per_watch = min(remaining, 5.0 if out.tty else 30.0)
        for event in s.watch(s.namespace, args.name, rv, int(max(1, per_watch))):
            kind = event.get("type")
            if kind == "DELETED":
                raise CliError(f"{args.name} was deleted while watching", Exit.NOT_FOUND)
            if kind not in ("ADDED", "MODIFIED"):
                break
            obj = event["object"]
            draw(obj)
            if view.watch_outcome(obj) is not None:
                break
        else:
            obj = s.get(s.namespace, args.name)  # the watch timed out: re-read (and refresh ages)
            draw(obj)


def _annotation_command(control: ctl.AnnotationControl) -> Callable[[Session, argparse.Namespace, Out], int]:
    def run(s: Session, args: argparse.Namespace, out: Out) -> int:
        done = actions.write_annotation(s, s.namespace, args.name, control, _now())
        out.print(f"{args.name}: {done.what} written; {done.does}")
        if not args.wait:
            return Exit.OK
        assert done.value is not None
        return _wait_handled(s, args, out, control, done.value)
    return run


def _wait_handled(s: Session, args: argparse.Namespace, out: Out, control: ctl.AnnotationControl,
                  value: str) -> int:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        obj = s.get(s.namespace, args.name)
        st = view.status_of(obj)
        if (st.get("controls") or {}).get(control.seen_key) == value:
            if control is ctl.APPROVE and st.get("approvedBy") != value:
                raise CliError(f"the operator ignored the approval: no gate was waiting when it arrived "
                               f"({st.get('phase')}: {st.get('message')})", Exit.NOT_APPLICABLE)
            extra = f"; approvedBy {st.get('approvedBy')}" if control is ctl.APPROVE else ""
            out.print(f"{args.name}: handled by the operator: {st.get('phase')} ({st.get('message')}){extra}")
            return Exit.OK
        time.sleep(0.5)
    raise CliError(f"the operator did not handle {control.annotation}={value} within {args.timeout:g}s "
                   "(is it running and watching this namespace?)", Exit.TIMEOUT)


def _toggle_command(toggle: ctl.SpecToggle) -> Callable[[Session, argparse.Namespace, Out], int]:
    def run(s: Session, args: argparse.Namespace, out: Out) -> int:
        done = actions.write_toggle(s, s.namespace, args.name, toggle)
        for note in done.notes:
            out.warn(note)
        out.print(f"{args.name}: {done.does}")
        return Exit.OK
    return run


def cmd_drill(s: Session, args: argparse.Namespace, out: Out) -> int:
    kind = DrillKind(args.kind)
    done = drills.write_drill(s, s.namespace, args.name, kind, _now())
    out.print(f"{args.name}: {done.what} written; {done.does}")
    if not args.wait:
        return Exit.OK
    assert done.value is not None
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        drill = drills.drill_outcome(s.get(s.namespace, args.name), kind, done.value)
        if drill is not None:
            out.print(f"{args.name}: {drills.drill_text(drill)}")
            return int(drills.exit_of(drill))
        time.sleep(0.5)
    raise CliError(f"the drill asked for by {done.what} did not end within {args.timeout:g}s (is the operator "
                   f"running and watching this namespace? `kubectl tollgate status {args.name}` shows it)",
                   Exit.TIMEOUT)


def cmd_history(s: Session, args: argparse.Namespace, out: Out) -> int:
    obj = s.get(s.namespace, args.name)
    if args.output != "table":
        out.data(list(view.status_of(obj).get("history") or []), args.output)
    else:
        out.print(view.render_history(obj))
    return Exit.OK


def cmd_evidence(s: Session, args: argparse.Namespace, out: Out) -> int:
    record_name = args.incident
    if record_name is None:
        obj = s.get(s.namespace, args.name)
        record_name = view.status_of(obj).get("lastIncident")
        if not record_name:
            raise CliError(f"{args.name} has no incident: nothing was rolled back or aborted", Exit.NOT_FOUND)
    record = s.evidence(s.namespace, record_name)
    if args.output != "table":
        out.data(record, args.output)
    else:
        out.print(view.render_evidence(record, out.style))
    return Exit.OK


def cmd_dashboard(s: Session, args: argparse.Namespace, out: Out) -> int:
    try:
        from tollgate.cli.dashboard.server import serve
    except ImportError as exc:
        raise CliError(f"the dashboard needs its extra ({exc.name} is missing): pip install 'tollgate[dashboard]'",
                       Exit.USAGE) from exc
    return serve(s, namespace=args.namespace, address=args.address, port=args.port,
                 prometheus_url=args.prometheus_url, read_only=args.read_only, stdout=out.stdout, stderr=out.stderr)


COMMANDS: dict[str, Callable[[Session, argparse.Namespace, Out], int]] = {
    "get": cmd_get,
    "status": cmd_status,
    **{c: _annotation_command(control) for c, control in ctl.ANNOTATION_CONTROLS.items()},
    "pause": _toggle_command(ctl.PAUSE),
    "resume": _toggle_command(ctl.RESUME),
    "kill": _toggle_command(ctl.KILL),
    "unkill": _toggle_command(ctl.UNKILL),
    "drill": cmd_drill,
    "history": cmd_history,
    "evidence": cmd_evidence,
    "dashboard": cmd_dashboard,
}


def run(argv: Sequence[str] | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None,
        connector: Callable[[str | None, str | None, str | None], Session] = connect) -> int:
    """Parse, connect, run one command; returns the exit code (see errors.Exit)."""
    out = Out(stdout or sys.stdout, stderr or sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "promote" and not (args.full or args.step):
            raise CliError(
                "promote needs --full (skip all remaining steps now) or --step (complete the current step now "
                "and enter the next). To pass an approval gate use `kubectl tollgate approve`.",
                Exit.USAGE)
        command = "step" if args.command == "promote" and args.step else args.command
        session = connector(getattr(args, "kubeconfig", None), getattr(args, "context", None),
                            getattr(args, "namespace", None))
        return COMMANDS[command](session, args, out)
    except CliError as exc:
        out.stderr.write(f"error: {exc.message}\n")
        return int(exc.code)
    except KeyboardInterrupt:
        out.stderr.write("interrupted\n")
        return int(Exit.INTERRUPTED)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
