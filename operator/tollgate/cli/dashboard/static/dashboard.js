// Tollgate dashboard: live fragments from the watch (Server-Sent Events), confirmations for controls,
// and the SLO charts drawn with the Plotly served by the dashboard itself (no CDN).
(function () {
  "use strict";
  var token = document.querySelector('meta[name="tollgate-token"]').content;
  var live = document.getElementById("live");
  var charts = document.getElementById("charts");
  var liveState = document.getElementById("live-state");
  var lastResult = null;

  function throttle(fn, ms) {
    var timer = null, again = false;
    return function () {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(function () { timer = null; if (again) { again = false; fn(); } }, ms);
    };
  }

  function showResult() {
    var out = document.getElementById("control-result");
    if (out && lastResult) { out.textContent = lastResult.text; out.className = lastResult.cls; }
  }

  var refreshFragment = throttle(function () {
    if (!live) return;
    fetch(live.dataset.fragment, {headers: {"Accept": "text/html"}}).then(function (r) {
      if (r.status >= 400) { location.reload(); return null; }
      return r.text();
    }).then(function (html) {
      if (html === null) return;
      // replace each section by id: the charts (not in the fragment) keep their drawing and zoom
      var fresh = document.createElement("template");
      fresh.innerHTML = html;
      Array.prototype.forEach.call(fresh.content.querySelectorAll("section[id]"), function (section) {
        var old = document.getElementById(section.id);
        if (old) old.replaceWith(section);
      });
      showResult();
    }).catch(function () {});
  }, 500);

  // --- live updates ------------------------------------------------------------------------------
  var source = new EventSource("/events");
  source.onopen = function () { liveState.textContent = "live"; liveState.className = "live on"; };
  source.onerror = function () { liveState.textContent = "reconnecting…"; liveState.className = "live off"; };
  var reload = throttle(function () { location.reload(); }, 2000);
  source.addEventListener("change", function (e) {
    if (document.getElementById("problem")) { if (e.data !== "*" || liveState.dataset.seen) reload(); liveState.dataset.seen = "1"; return; }
    if (!live) return;
    var watch = live.dataset.watch;
    if (watch === "*" || e.data === "*" || e.data === watch) {
      refreshFragment();
      if (charts) refreshCharts();
    }
  });

  // --- controls, each behind a confirmation --------------------------------------------------------
  var dialog = document.getElementById("confirm");
  var pending = null;
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button.control");
    if (!button || button.disabled || !dialog) return;
    pending = button.dataset.control;
    document.getElementById("confirm-title").textContent = button.dataset.label + " " + live.dataset.watch + "?";
    document.getElementById("confirm-text").textContent = button.dataset.confirm;
    document.getElementById("confirm-writes").textContent = "Writes " + button.dataset.writes + ", as kubectl tollgate " + pending + " would.";
    dialog.showModal();
  });
  if (dialog) {
    dialog.addEventListener("close", function () {
      var control = pending;
      pending = null;
      if (dialog.returnValue !== "ok" || !control) return;
      var parts = live.dataset.watch.split("/");
      fetch("/md/" + encodeURIComponent(parts[0]) + "/" + encodeURIComponent(parts[1]) + "/controls/" + control, {
        method: "POST", headers: {"X-Tollgate-Token": token}
      }).then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
        .then(function (res) {
          if (res.ok) {
            var text = res.body.what + (res.body.written ? " written: " : ": ") + res.body.does;
            (res.body.notes || []).forEach(function (n) { text += " Warning: " + n; });
            lastResult = {text: text, cls: "ok"};
          } else {
            lastResult = {text: control + " refused: " + res.body.error, cls: "error"};
          }
          showResult();
          refreshFragment();
        }).catch(function (err) { lastResult = {text: control + " failed: " + err, cls: "error"}; showResult(); });
    });
  }

  // --- SLO charts ------------------------------------------------------------------------------------
  var COLORS = {AnalysisPassed: "#2e7d32", Promoted: "#2e7d32", AnalysisFailed: "#c62828", RolledBack: "#c62828",
                Aborted: "#c62828", AnalysisError: "#ef6c00", ProgressDeadlineExceeded: "#c62828"};

  function fmtTime(ms) { return new Date(ms).toISOString().substring(11, 19) + " UTC"; }
  function fmt(v) { return (v === null || v === undefined) ? "-" : Number(v).toPrecision(4).replace(/\.?0+$/, ""); }

  function draw(c, data, holder) {
    var id = "chart-" + c.name;
    var box = document.getElementById(id + "-box");
    if (!box) {
      box = document.createElement("figure");
      box.id = id + "-box";
      box.className = "chart";
      box.innerHTML = '<figcaption></figcaption><div class="plot" id="' + id + '"></div>';
      holder.appendChild(box);
    }
    var caption = box.querySelector("figcaption");
    var crossed = c.firstCrossing
      ? "threshold crossed at " + fmtTime(c.firstCrossing.t) + " (canary " + fmt(c.firstCrossing.value) + " beyond " + c.firstCrossing.limit + ")"
      : "threshold not crossed in this range";
    caption.innerHTML = "";
    var title = document.createElement("strong");
    title.textContent = c.name;
    var verdict = document.createElement("span");
    verdict.className = "verdict verdict-" + c.verdict;
    verdict.textContent = c.verdict;
    var text = document.createElement("span");
    text.className = c.firstCrossing ? "crossed" : "muted";
    text.textContent = " · " + c.threshold + " · " + (c.error ? "no series: " + c.error : crossed);
    caption.append(title, " ", verdict, text);
    if (c.error) { return; }
    var x0 = data.start, x1 = data.end;
    var traces = [
      {x: c.stable.x, y: c.stable.y, name: "stable", mode: "lines", line: {color: "#1565c0", width: 2}},
      {x: c.canary.x, y: c.canary.y, name: "canary", mode: "lines", line: {color: "#ef6c00", width: 2}}
    ];
    c.thresholds.forEach(function (t) {
      traces.push({x: [x0, x1], y: [t.value, t.value], name: "threshold " + t.label, mode: "lines",
                   line: {color: "#c62828", dash: "dash", width: 1.5}});
    });
    if (c.baselineLimit) {
      traces.push({x: c.baselineLimit.x, y: c.baselineLimit.y, name: "threshold " + c.baselineLimit.label, mode: "lines",
                   line: {color: "#ad1457", dash: "dot", width: 1.5}});
    }
    if (c.crossings.length) {
      traces.push({x: c.crossings.map(function (p) { return p.t; }), y: c.crossings.map(function (p) { return p.value; }),
                   name: "beyond threshold", mode: "markers", marker: {color: "#c62828", symbol: "x", size: 7}});
    }
    var shapes = [], notes = [];
    c.steps.forEach(function (s) {
      shapes.push({type: "line", xref: "x", yref: "paper", x0: s.t, x1: s.t, y0: 0, y1: 1, line: {color: "#9e9e9e", dash: "dot", width: 1}});
      notes.push({x: s.t, y: 1, xref: "x", yref: "paper", text: "step " + s.step + " · " + s.weight + "%", showarrow: false,
                  yanchor: "bottom", font: {size: 10, color: "#616161"}});
    });
    c.moments.forEach(function (m, i) {
      var color = COLORS[m.reason] || "#616161";
      shapes.push({type: "line", xref: "x", yref: "paper", x0: m.t, x1: m.t, y0: 0, y1: 1, line: {color: color, width: 1.5}});
      notes.push({x: m.t, y: 0.92 - 0.08 * (i % 3), xref: "x", yref: "paper", text: m.reason, showarrow: false, xanchor: "left",
                  font: {size: 10, color: color}, bgcolor: "rgba(255,255,255,0.8)"});
    });
    var layout = {margin: {l: 55, r: 10, t: 24, b: 36}, height: 260, uirevision: c.name, shapes: shapes, annotations: notes,
                  xaxis: {type: "date", range: [x0, x1]}, yaxis: {rangemode: "tozero", title: {text: c.name}},
                  legend: {orientation: "h", y: -0.22}};
    Plotly.react(id, traces, layout, {displaylogo: false, responsive: true});
    box.dataset.drawn = "1";
  }

  var refreshCharts = throttle(function () {
    var holder = document.getElementById("chart-list");
    var note = document.getElementById("charts-note");
    fetch(charts.dataset.series).then(function (r) { return r.json(); }).then(function (data) {
      if (data.error) { note.textContent = data.error; note.className = "error"; return; }
      note.className = "muted";
      note.textContent = "Window " + data.window + " per point, as the operator judges; versions " +
        Object.keys(data.versions).map(function (k) { return k + " " + data.versions[k]; }).join(", ") +
        ". Vertical lines: where each step began and each verdict.";
      data.charts.forEach(function (c) { draw(c, data, holder); });
    }).catch(function (err) { note.textContent = "The chart data could not be loaded: " + err; note.className = "error"; });
  }, 3000);

  if (charts) refreshCharts();
})();
