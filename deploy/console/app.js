/*
 * Kesu supervisor console: signs in with a staff token (kept in this tab's
 * sessionStorage, sent as Bearer), fetches GET /v1/console/summary every
 * REFRESH_MS and draws it. Charts are plain SVG built here; nothing is
 * fetched from anywhere but this server. Case titles are the public's own
 * words: they are only ever set as textContent, never as HTML.
 */
"use strict";

const REFRESH_MS = 15000;
const TOKEN_KEY = "kesu.console.token";
const SVG_NS = "http://www.w3.org/2000/svg";
const STATUS_ORDER = ["received", "classified", "assigned", "accepted", "in_progress",
  "resolved", "replied", "returned", "reopened", "closed", "merged", "rejected", "withdrawn"];
const TERMINAL = new Set(["closed", "merged", "rejected", "withdrawn"]);

let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function pct(rate) {
  return rate === null || rate === undefined ? "–" : Math.round(Number(rate) * 1000) / 10 + " %";
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString("zh-CN", { hour12: false, timeZone: "Asia/Shanghai" });
}

function fillTable(id, rows, cells, keyAttr) {
  const body = $(id).querySelector("tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = el("tr");
    if (keyAttr) tr.setAttribute(keyAttr[0], r[keyAttr[1]] || "");
    for (const c of cells(r)) tr.appendChild(c);
    body.appendChild(tr);
  }
  const empty = $(id + "-empty");
  if (empty) empty.hidden = rows.length > 0;
}

function td(text, cls) {
  const e = el("td", cls ? { class: cls } : {}, text);
  if (cls === "title") e.title = text || "";
  return e;
}

/* vertical bars, one per label */
function barChart(host, items, color) {
  const W = 520, H = 180, pad = 40, n = Math.max(items.length, 1);
  const max = Math.max(1, ...items.map((i) => i.value));
  const bw = (W - 2 * pad) / n;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H + 64}`, role: "img" });
  s.appendChild(svg("line", { x1: pad, y1: H, x2: W - pad, y2: H, stroke: "#98a2b3" }));
  items.forEach((it, i) => {
    const h = (it.value / max) * (H - pad);
    const x = pad + i * bw + bw * 0.15;
    const bar = svg("rect", { x, y: H - h, width: bw * 0.7, height: h,
      fill: it.color || color, "data-label": it.label, "data-value": it.value });
    bar.appendChild(svg("title", {}, `${it.label}: ${it.value}`));
    s.appendChild(bar);
    s.appendChild(svg("text", { x: x + bw * 0.35, y: H - h - 3, "text-anchor": "middle" }, it.value));
    s.appendChild(svg("text", { x: x + bw * 0.35, y: H + 12, "text-anchor": "end",
      transform: `rotate(-35 ${x + bw * 0.35} ${H + 12})` }, it.label));
  });
  host.replaceChildren(s);
}

/* horizontal bars: open load per department, with the on-time rate beside it */
function deptChart(host, depts) {
  const rows = depts.slice(0, 12), W = 900, rowH = 22, left = 250, right = 220;
  const H = Math.max(1, rows.length) * rowH + 10;
  const max = Math.max(1, ...rows.map((d) => d.open));
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  rows.forEach((d, i) => {
    const y = 5 + i * rowH, w = ((W - left - right) * d.open) / max;
    s.appendChild(svg("text", { x: left - 6, y: y + 14, "text-anchor": "end" },
      d.name ? `${d.name} (${d.code})` : d.code));
    s.appendChild(svg("rect", { x: left, y: y + 3, width: Math.max(w, 1), height: rowH - 6,
      fill: d.overdue > 0 ? "#c62828" : "#1f5fa8", "data-dept": d.code }));
    s.appendChild(svg("text", { x: left + w + 4, y: y + 14 }, `${d.open} open`));
    s.appendChild(svg("text", { x: W - 4, y: y + 14, "text-anchor": "end" },
      `on time ${pct(d.on_time_rate)}`));
  });
  host.replaceChildren(s);
}

/* the satisfaction rate per day as a line; days without evaluations leave a gap */
function lineChart(host, days) {
  const W = 520, H = 180, pad = 44, n = Math.max(days.length - 1, 1);
  const s = svg("svg", { viewBox: `0 0 ${W} ${H + 30}`, role: "img" });
  for (const v of [0, 0.5, 1]) {
    const y = H - v * (H - pad);
    s.appendChild(svg("line", { x1: pad, y1: y, x2: W - 24, y2: y, stroke: "#e2e6ec" }));
    s.appendChild(svg("text", { x: pad - 4, y: y + 4, "text-anchor": "end" }, `${v * 100}%`));
  }
  let path = "", pen = false;
  days.forEach((d, i) => {
    const x = pad + (i * (W - pad - 24)) / n;
    if (i % 2 === 0 || i === days.length - 1)
      s.appendChild(svg("text", { x, y: H + 16, "text-anchor": "middle" }, String(d.day).slice(5)));
    if (d.satisfaction_rate === null || d.satisfaction_rate === undefined) { pen = false; return; }
    const y = H - Number(d.satisfaction_rate) * (H - pad);
    path += (pen ? " L" : " M") + `${x.toFixed(1)} ${y.toFixed(1)}`;
    pen = true;
    const dot = svg("circle", { cx: x, cy: y, r: 3.5, fill: "#2e7d32", "data-day": d.day,
      "data-rate": d.satisfaction_rate });
    dot.appendChild(svg("title", {}, `${d.day}: ${pct(d.satisfaction_rate)} of ${d.evaluated}`));
    s.appendChild(dot);
  });
  if (path) s.appendChild(svg("path", { d: path.trim(), fill: "none", stroke: "#2e7d32",
    "stroke-width": 2 }));
  host.replaceChildren(s);
}

function render(sum) {
  const scope = sum.scope || {};
  $("scope").textContent = scope.department ? `${scope.role} · department ${scope.department}`
    : `${scope.role} · all departments`;
  $("updated").textContent = "updated " + when(sum.generated_at);
  $("open-total").textContent = sum.open_total;
  $("sla-breached").textContent = sum.sla.breached;
  $("sla-warning").textContent = sum.sla.warning;
  $("emergency-count").textContent = sum.emergency_total;

  const counts = sum.status_counts;
  const shown = STATUS_ORDER.filter((s) => counts[s] > 0 || !TERMINAL.has(s));
  barChart($("status-chart"), shown.map((s) => ({ label: s, value: counts[s] || 0,
    color: TERMINAL.has(s) ? "#98a2b3" : "#1f5fa8" })), "#1f5fa8");
  fillTable("status-table", STATUS_ORDER.filter((s) => counts[s] > 0).map((s) => ({ s, n: counts[s] })),
    (r) => [td(r.s), td(r.n, "num")], ["data-status", "s"]);
  for (const tr of $("status-table").querySelectorAll("tr"))
    tr.lastChild.id = "count-" + tr.getAttribute("data-status");

  fillTable("emergencies", sum.emergencies, (r) => [td(r.case_no), td(r.title, "title"),
    td(r.status), td(r.department || "(not assigned)"), td(when(r.created_at))],
    ["data-case-no", "case_no"]);
  // the list holds the oldest ones; say so when there are more than it shows
  const more = $("emergencies-more");
  more.hidden = sum.emergency_total <= sum.emergencies.length;
  more.textContent = `The oldest ${sum.emergencies.length} of ${sum.emergency_total} open ` +
    "emergencies are listed.";
  fillTable("sla", sum.sla.items, (r) => {
    const lv = td(r.level === "breached" ? "past limit" : r.level === "warning_80" ? "80 %" : "50 %",
      "level-" + r.level);
    return [td(r.case_no), td(r.title, "title"), td(r.kind), lv, td(when(r.due_at)),
      td(r.department || "")];
  }, ["data-case-no", "case_no"]);
  fillTable("departments", sum.departments, (r) => [td(r.name ? `${r.name} (${r.code})` : r.code),
    td(r.open, "num"), td(r.overdue, "num"), td(r.emergencies, "num"), td(r.closed, "num"),
    td(pct(r.on_time_rate), "num")], ["data-dept", "code"]);
  deptChart($("dept-chart"), sum.departments);
  lineChart($("satisfaction-chart"), sum.satisfaction);
  const ev = sum.satisfaction.reduce((a, d) => a + d.evaluated, 0);
  const sat = sum.satisfaction.reduce((a, d) => a + d.satisfied, 0);
  $("satisfaction-note").textContent = ev ? `${sat} of ${ev} evaluations satisfied in the last ${sum.days} days`
    : `no evaluations in the last ${sum.days} days`;

  const hs = sum.hotspots;
  fillTable("hotspots", hs.items, (r) => [td(r.district_code), td(r.domain), td(r.case_count, "num"),
    td(r.master_case_no), td(when(r.detected_at))], ["data-district", "district_code"]);
  if (!hs.available) $("hotspots-empty").textContent = "Hotspot detection is not installed.";
  document.body.setAttribute("data-loaded", sum.generated_at);
}

async function load() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showLogin("");
  let resp;
  try {
    resp = await fetch("/v1/console/summary", { headers: { Authorization: "Bearer " + token },
      cache: "no-store" });
  } catch (e) {
    $("board-error").textContent = "The server cannot be reached; retrying.";
    return;
  }
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    return showLogin(resp.status === 401 ? "This token is not valid (unknown or revoked)."
      : "This token's role may not read cases.");
  }
  if (!resp.ok) {
    let msg = "HTTP " + resp.status;
    try { msg = (await resp.json()).error.message; } catch (e) { /* keep the status */ }
    $("board-error").textContent = "Could not load the summary: " + msg;
    return;
  }
  $("board-error").textContent = "";
  showBoard();
  render(await resp.json());
}

function showLogin(msg) {
  if (timer) clearInterval(timer);
  timer = null;
  $("board").hidden = true;
  $("session").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("session").hidden = false;
  if (!timer) timer = setInterval(load, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token").value = "";
    load();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("Signed out.");
  });
  $("refresh").addEventListener("click", load);
  load();
});
