"""The live page's HTML and script (no external files: it works without network)."""

from __future__ import annotations

import html
import json

from search.report.render import CSS

_SCRIPT = r"""
const POLL = __POLL__;
let reportKey = null;
const fmt = v => (v === null || v === undefined) ? "-" : (typeof v === "number" ? v.toFixed(4) : String(v));
function esc(s) { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
function curve(points, metric) {
  const vals = points.filter(p => p.value !== null && p.value !== undefined);
  if (!vals.length) return "<em>no epoch yet</em>";
  const W = 260, H = 90, n = Math.max(points.length, 2);
  const lo = Math.min(...vals.map(p => p.value)), hi = Math.max(...vals.map(p => p.value));
  const y = v => H - 8 - (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (H - 16);
  const x = e => 8 + (e - 1) / (n - 1) * (W - 16);
  const pts = vals.map(p => x(p.epoch).toFixed(1) + "," + y(p.value).toFixed(1)).join(" ");
  return `<svg width="${W}" height="${H}" class="curve"><polyline fill="none" stroke="#1f6feb" ` +
         `stroke-width="2" points="${pts}"/></svg><div>${esc(metric)} ${fmt(vals[vals.length-1].value)}` +
         ` (epoch ${vals[vals.length-1].epoch})</div>`;
}
function render(s) {
  const p = s.progress, c = p.counts;
  document.getElementById("status").textContent = s.status;
  document.getElementById("progress").textContent =
    `${p.done}/${p.total} done | running ${p.running} | completed ${c.completed || 0} | ` +
    `pruned ${c.pruned || 0} | failed ${c.failed || 0} | best ${s.metric} ${fmt(p.best_value)}` +
    (p.best_trial_id ? ` (trial ${p.best_trial_id})` : "") + ` | elapsed ${p.elapsed} | ETA ${p.eta}`;
  document.getElementById("bar").max = Math.max(p.total, 1);
  document.getElementById("bar").value = p.done;
  const rows = s.trials.map(t =>
    `<tr id="trial-${t.trial_id}" class="${t.status}"><td>${t.trial_id}</td><td>${esc(t.kind)}</td>` +
    `<td>${esc(t.status)}</td><td>${fmt(t.value)}</td><td>${t.epochs_done}</td>` +
    `<td>${t.duration_s === null ? "-" : Math.round(t.duration_s) + "s"}</td>` +
    `<td>${esc(Object.entries(t.params).map(([k, v]) => k + "=" + JSON.stringify(v)).join(" "))}</td>` +
    `<td>${esc(t.error || "")}</td></tr>`).join("");
  document.getElementById("trials").innerHTML =
    `<tr><th>trial</th><th>kind</th><th>status</th><th>${esc(s.metric)}</th><th>epochs</th>` +
    `<th>time</th><th>params</th><th>error</th></tr>` + rows;
  const curves = Object.entries(s.curves).map(([id, pts]) =>
    `<div class="card"><b>trial ${id}</b>${curve(pts, s.metric)}</div>`).join("");
  document.getElementById("curves").innerHTML = curves || "<p>no trial is running.</p>";
  document.getElementById("updated").textContent = new Date().toLocaleTimeString();
  if (s.fingerprint !== reportKey) loadReport();
}
async function loadReport() {
  const r = await fetch("api/report");
  if (!r.ok) return;
  const rep = await r.json();
  reportKey = rep.fingerprint;
  document.getElementById("report").innerHTML = rep.html;
}
async function poll() {
  try {
    const r = await fetch("api/state");
    if (r.ok) render(await r.json());
    else document.getElementById("updated").textContent = "server answered " + r.status;
  } catch (e) {
    document.getElementById("updated").textContent = "server unreachable: " + e;
  }
  setTimeout(poll, POLL);
}
poll();
"""

_EXTRA_CSS = """
#progress { font-family: ui-monospace, monospace; margin: .4em 0; }
progress { width: 420px; height: 14px; }
.card { display: inline-block; border: 1px solid #ddd; padding: 6px; margin: 4px; font-size: 13px; }
tr.failed td { background: #fdecea; }
tr.running td { background: #eef6ff; }
#updated { color: #777; font-size: 12px; }
"""


def page(study: str, poll_ms: int) -> str:
    """The whole page for ``study``; its script polls every ``poll_ms`` milliseconds."""
    name = html.escape(study)
    script = _SCRIPT.replace("__POLL__", json.dumps(int(poll_ms)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>leuksearch: {name}</title>
<style>{CSS}{_EXTRA_CSS}</style></head><body>
<h1>Study <span id="study">{name}</span> <small id="status"></small></h1>
<progress id="bar" value="0" max="1"></progress>
<div id="progress">loading...</div>
<div id="updated"></div>
<h2>Running trials: learning curves</h2><div id="curves"></div>
<h2>Trials</h2><div class="tablewrap"><table id="trials"></table></div>
<h2>Report</h2><div id="report"><p>building...</p></div>
<script>{script}</script>
</body></html>
"""
