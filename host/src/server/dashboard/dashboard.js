// The Sluice dashboard: polls the server's JSON API once a second and draws each query's
// progress records with uPlot. Read-only views need no token; stop sends the one typed in
// the header (kept in this browser's localStorage).
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const tokenInput = $("token");
tokenInput.value = localStorage.getItem("sluice-token") || "";
tokenInput.addEventListener("input", () => localStorage.setItem("sluice-token", tokenInput.value));

let selected = decodeURIComponent(location.hash.slice(1)) || null;
const charts = {};

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function fmt(n, digits = 0) {
  return n == null || Number.isNaN(n) ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: digits });
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
}

function renderQueries(queries, lastByName) {
  const body = $("queries").querySelector("tbody");
  body.replaceChildren();
  for (const q of queries) {
    const tr = document.createElement("tr");
    tr.className = "selectable" + (q.name === selected ? " selected" : "");
    tr.dataset.query = q.name;
    const p = lastByName[q.name];
    cell(tr, q.name);
    cell(tr, q.isActive ? q.message || "Active" : "Stopped");
    cell(tr, q.lastBatchId == null ? "–" : String(q.lastBatchId));
    cell(tr, p ? fmt(p.inputRowsPerSecond) : "–");
    cell(tr, p ? fmt(p.processedRowsPerSecond) : "–");
    cell(tr, q.exception || "", "error");
    tr.addEventListener("click", () => {
      selected = q.name;
      location.hash = encodeURIComponent(q.name);
      for (const c of Object.values(charts)) c.chart.destroy();
      for (const k of Object.keys(charts)) delete charts[k];
      tick();
    });
    body.appendChild(tr);
  }
}

function node(title, detail) {
  const div = document.createElement("div");
  div.className = "node";
  div.textContent = title;
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    div.appendChild(small);
  }
  return div;
}

function stage(nodes) {
  const div = document.createElement("div");
  div.className = "stage";
  for (const n of nodes) div.appendChild(n);
  return div;
}

function arrow() {
  const span = document.createElement("span");
  span.className = "arrow";
  span.textContent = "→";
  return span;
}

// Inputs (with their own steps) → views → combine → steps → operators → sink, with the last batch's
// rows in and out where the progress record has them.
function renderPlan(info, last) {
  const plan = info.plan || {};
  const parts = [];
  const inputs = (plan.inputs || []).map((input, i) => {
    const rows = last && last.sources[i] ? `${fmt(last.sources[i].numInputRows)} rows in the last batch` : "";
    const steps = input.steps.map((s) => s.name).join(" → ");
    const detail = [input.source, input.watermark ? `watermark ${input.watermark}` : "", steps ? `steps: ${steps}` : "", rows]
      .filter(Boolean)
      .join(" · ");
    return node(`input ${input.name}`, detail);
  });
  parts.push(stage(inputs));
  // Views (named intermediate results), in the order they run; their stateful operators come
  // first in the progress record's list.
  let stateBefore = 0;
  const views = (plan.views || []).map((v) => {
    const c = v.combine || {};
    const reads =
      c.kind === "from" ? `from ${c.of}` :
      c.kind === "union" ? `union of ${(c.of || []).join(", ")}` :
      `${c.type || ""} ${c.kind} of ${c.left} and ${c.right || c.table} on ${(c.on || []).join(", ")}`;
    const ops = v.operators || [];
    const stateful = ops.length + (c.kind === "stream-stream join" ? 1 : 0);
    const inState = last
      ? last.stateOperators.slice(stateBefore, stateBefore + stateful).reduce((n, s) => n + s.numRowsTotal, 0)
      : 0;
    stateBefore += stateful;
    const steps = (v.steps || []).map((s) => s.name).join(" → ");
    const detail = [reads, steps ? `steps: ${steps}` : "", ops.map((o) => o.kind).join(", "), stateful && last ? `${fmt(inState)} rows in state` : ""]
      .filter(Boolean)
      .join(" · ");
    return node(`view ${v.name}`, detail);
  });
  if (views.length) parts.push(arrow(), stage(views));
  // Reading one view needs no node of its own: the arrow from the views says it.
  if (plan.combine && plan.combine.kind !== "from") {
    const c = plan.combine;
    parts.push(arrow(), stage([node(c.kind + (c.type ? ` (${c.type})` : ""), [c.on ? c.on.join(", ") : "", c.table || ""].filter(Boolean).join(" · "))]));
  }
  const digests = Object.fromEntries((info.steps || []).map((s) => [s.name, s.digest]));
  for (const s of plan.steps || []) {
    // A Wasm step shows its module; an expression step (SQL's, or selectExpr/where) its text.
    const detail = s.module ? `${s.module} · ${(digests[s.name] || "").slice(0, 19)}` : s.expression || "";
    parts.push(arrow(), stage([node(`step ${s.name}`, detail)]));
  }
  (plan.operators || []).forEach((op, i) => {
    const st = last && last.stateOperators[stateBefore + i + (plan.combine && plan.combine.kind === "stream-stream join" ? 1 : 0)];
    const detail = [op.groupBy ? `by ${op.groupBy.join(", ")}` : "", op.window || "", st ? `${fmt(st.numRowsTotal)} rows in state` : ""]
      .filter(Boolean)
      .join(" · ");
    parts.push(arrow(), stage([node(op.kind, detail)]));
  });
  const out = last ? `${fmt(last.sink.numOutputRows)} rows in the last batch` : "";
  parts.push(arrow(), stage([node(`sink (${plan.outputMode || ""})`, [plan.sink, out].filter(Boolean).join(" · "))]));
  $("plan").replaceChildren(...parts);
  // A query written in SQL: its text beside the plan it became.
  const sql = $("sql");
  sql.textContent = plan.sql || "";
  sql.hidden = !plan.sql;
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

function drawChart(id, labels, data, units) {
  const el = $(id);
  el.dataset.points = String(data[0].length);
  const key = labels.join("|");
  const existing = charts[id];
  if (existing && existing.key === key) {
    existing.chart.setData(data);
    return;
  }
  if (existing) existing.chart.destroy();
  const width = Math.max(300, el.clientWidth || 420);
  const opts = {
    width,
    height: 200,
    scales: { x: { time: false } },
    axes: [{ label: "batch" }, { label: units, size: 80 }],
    series: [{ label: "batch" }].concat(labels.map((l, i) => ({ label: l, stroke: PALETTE[i % PALETTE.length], width: 2 }))),
  };
  charts[id] = { key, chart: new uPlot(opts, data, el) };
}

function series(records, f) {
  return records.map((p) => {
    const v = f(p);
    return v == null || Number.isNaN(v) ? null : v;
  });
}

function renderCharts(records) {
  const xs = records.map((p) => p.batchId);
  drawChart("chart-rate", ["input rows/s", "processed rows/s"], [xs, series(records, (p) => p.inputRowsPerSecond), series(records, (p) => p.processedRowsPerSecond)], "rows/s");
  const phases = [...new Set(records.flatMap((p) => Object.keys(p.durationMs || {})))].filter((k) => k !== "triggerExecution").sort();
  drawChart(
    "chart-duration",
    ["total"].concat(phases),
    [xs, series(records, (p) => p.batchDuration)].concat(phases.map((k) => series(records, (p) => (p.durationMs || {})[k]))),
    "ms",
  );
  drawChart("chart-rows", ["input rows"], [xs, series(records, (p) => p.numInputRows)], "rows");
  const gap = (p) => {
    const w = p.eventTime && p.eventTime.watermark;
    return w ? (Date.parse(p.timestamp) - Date.parse(w)) / 1000 : null;
  };
  // With several inputs, each one's own watermark beside the global one.
  const inputs = [...new Set(records.flatMap((p) => Object.keys(p.eventTime || {})))]
    .filter((k) => k.startsWith("watermark."))
    .sort();
  const inputGap = (key) => (p) => {
    const w = p.eventTime && p.eventTime[key];
    return w ? (Date.parse(p.timestamp) - Date.parse(w)) / 1000 : null;
  };
  drawChart(
    "chart-watermark",
    ["global"].concat(inputs.map((k) => k.slice("watermark.".length))),
    [xs, series(records, gap)].concat(inputs.map((k) => series(records, inputGap(k)))),
    "s",
  );
  // observedMetrics carry transform.<step>.callSeconds per batch.
  const steps = [...new Set(records.flatMap((p) => Object.keys(p.observedMetrics || {})))]
    .filter((k) => k.endsWith(".callSeconds"))
    .sort();
  drawChart(
    "chart-wasm",
    steps.map((k) => k.slice("transform.".length, -".callSeconds".length)),
    [xs].concat(steps.map((k) => series(records, (p) => 1000 * Number((p.observedMetrics || {})[k])))),
    "ms",
  );
  // How busy the batch kept the CPU: the worker pool's tasks and the query's own thread.
  const metric = (p, k) => Number((p.observedMetrics || {})[k] || 0);
  drawChart(
    "chart-workers",
    ["cores busy", "worker tasks"],
    [
      xs,
      series(records, (p) => (p.batchDuration > 0 ? (metric(p, "parallel.taskCpuMs") + metric(p, "parallel.queryThreadCpuMs")) / p.batchDuration : null)),
      series(records, (p) => metric(p, "parallel.tasks")),
    ],
    "cores / tasks",
  );
  // Kafka inputs report each partition's lag behind the latest offset.
  const lagOf = (p) => {
    const lags = {};
    (p.sources || []).forEach((s, i) => {
      for (const [part, n] of Object.entries((s.metrics || {}).offsetsBehindLatest || {})) lags[`${i}:${part}`] = n;
    });
    return lags;
  };
  const partitions = [...new Set(records.flatMap((p) => Object.keys(lagOf(p))))].sort();
  drawChart(
    "chart-lag",
    partitions,
    [xs].concat(partitions.map((k) => series(records, (p) => lagOf(p)[k]))),
    "offsets",
  );
  const sum = (field) => (p) => (p.stateOperators || []).reduce((a, s) => a + (s[field] || 0), 0);
  drawChart(
    "chart-state",
    ["state rows", "updated rows", "dropped by watermark", "memory MB"],
    [
      xs,
      series(records, sum("numRowsTotal")),
      series(records, sum("numRowsUpdated")),
      series(records, sum("numRowsDroppedByWatermark")),
      series(records, (p) => sum("memoryUsedBytes")(p) / 1e6),
    ],
    "rows / MB",
  );
}

function renderRecent(records) {
  const body = $("recent").querySelector("tbody");
  body.replaceChildren();
  for (const p of records.slice(-10).reverse()) {
    const tr = document.createElement("tr");
    cell(tr, String(p.batchId));
    cell(tr, p.timestamp);
    cell(tr, fmt(p.numInputRows));
    cell(tr, fmt(p.inputRowsPerSecond));
    cell(tr, fmt(p.batchDuration));
    cell(tr, fmt(p.sink.numOutputRows));
    body.appendChild(tr);
  }
}

// The module each step ran, batch by batch (progress records carry
// `transform.<step>.module`), and where it changed: the swap history.
function renderModules(info, records) {
  const body = $("modules").querySelector("tbody");
  body.replaceChildren();
  const select = $("swap-step");
  const chosen = select.value;
  select.replaceChildren();
  // Only Wasm steps have a module to show and swap.
  const steps = (info.steps && info.steps.length ? info.steps : (info.plan.steps || []).filter((s) => s.module).map((s) => ({ name: s.name, module: s.module, digest: "" })));
  for (const s of steps) {
    const changes = [];
    let previous = null;
    for (const p of records) {
      const digest = (p.observedMetrics || {})[`transform.${s.name}.module`];
      if (digest && previous && digest !== previous) changes.push(`batch ${p.batchId}: ${previous.slice(7, 19)} → ${digest.slice(7, 19)}`);
      if (digest) previous = digest;
    }
    const tr = document.createElement("tr");
    cell(tr, s.name);
    cell(tr, s.module);
    cell(tr, (s.digest || "").slice(0, 19));
    const td = document.createElement("td");
    td.className = "swaps";
    td.textContent = changes.join("; ");
    tr.appendChild(td);
    body.appendChild(tr);
    const option = document.createElement("option");
    option.value = option.textContent = s.name;
    select.appendChild(option);
  }
  if (chosen) select.value = chosen;
  $("swap-form").hidden = !info.isActive || !steps.length;
}

// A clustered query: every member of its group, from the entries each writes in the shared
// checkpoint — what it owns now, and whether it is still heard from.
function renderMembers(info) {
  const cluster = info.cluster;
  $("members").hidden = !cluster;
  if (!cluster) return;
  $("members-group").textContent = cluster.group;
  $("members-self").textContent = `(this process: ${cluster.member})`;
  const body = $("members").querySelector("tbody");
  body.replaceChildren();
  for (const m of Array.isArray(cluster.members) ? cluster.members : []) {
    const age = (Date.now() - Date.parse(m.updatedAt)) / 1000;
    const state = m.ended ? m.ended : age > 10 ? `silent for ${fmt(age)} s` : "running";
    const tr = document.createElement("tr");
    tr.dataset.member = m.member;
    cell(tr, m.member);
    cell(tr, state, m.ended || age > 10 ? "error" : "");
    cell(tr, m.partitions.map((p) => p.partition).join(", "));
    cell(tr, String(m.partitions.reduce((a, p) => a + p.batches, 0)));
    cell(tr, m.updatedAt);
    body.appendChild(tr);
  }
}

function renderFigures(last) {
  $("last-batch").textContent = last ? String(last.batchId) : "–";
  $("last-input-rows").textContent = last ? String(last.numInputRows) : "–";
  $("last-input-rate").textContent = last ? fmt(last.inputRowsPerSecond) : "–";
  $("last-duration").textContent = last ? `${last.batchDuration} ms` : "–";
  $("last-watermark").textContent = last && last.eventTime && last.eventTime.watermark ? last.eventTime.watermark : "–";
  $("last-state-rows").textContent = last ? fmt((last.stateOperators || []).reduce((a, s) => a + (s.numRowsTotal || 0), 0)) : "–";
}

async function tick() {
  try {
    const queries = await getJson("/queries");
    if (!selected && queries.length) selected = queries[0].name;
    const lastByName = {};
    let info = null;
    let records = [];
    for (const q of queries) {
      if (q.name !== selected) continue;
      info = q;
      const progress = await getJson(`/queries/${encodeURIComponent(q.name)}/progress`);
      records = progress.recentProgress || [];
      lastByName[q.name] = progress.lastProgress;
    }
    renderQueries(queries, lastByName);
    $("query").hidden = !info;
    if (info) {
      $("query-name").textContent = info.name;
      $("stop").disabled = !info.isActive;
      const last = records.length ? records[records.length - 1] : null;
      renderFigures(last);
      renderPlan(info, last);
      renderMembers(info);
      renderModules(info, records);
      renderCharts(records);
      renderRecent(records);
    }
    $("connection").textContent = "";
  } catch (e) {
    // A `sluice run --ui` ends with its run: say so, keep the last picture.
    $("connection").textContent = `not connected (${e.message}): the run may have ended`;
  }
}

$("stop").addEventListener("click", async () => {
  if (!selected) return;
  const result = $("action-result");
  result.textContent = "stopping…";
  const r = await fetch(`/queries/${encodeURIComponent(selected)}/stop`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokenInput.value}` },
  });
  const body = await r.json().catch(() => ({}));
  result.textContent = r.ok ? `stopped after batch ${body.lastBatchId}` : `refused (${r.status}): ${body.error || ""}`;
  result.className = r.ok ? "" : "error";
  tick();
});

$("swap-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!selected) return;
  const result = $("action-result");
  result.textContent = "swapping…";
  const r = await fetch(`/queries/${encodeURIComponent(selected)}/swap`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokenInput.value}`, "Content-Type": "application/json" },
    body: JSON.stringify({ step: $("swap-step").value, module: $("swap-module").value }),
  });
  const body = await r.json().catch(() => ({}));
  result.textContent = r.ok ? `swapped ${body.name} to ${body.digest} from the next batch` : `refused (${r.status}): ${body.error || ""}`;
  result.className = r.ok ? "" : "error";
});

tick();
setInterval(tick, POLL_MS);
