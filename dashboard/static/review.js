// Managers' sensor-log review: readings over time from /api/sensor-log, the alarms raised in the same
// period from /api/review/alarms, and a CSV export of exactly what is shown.
import {
  t, label, setLanguage, initialLanguage, rememberLanguage, translatePage, formatTime,
} from "/static/i18n.js";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
let shownAlarms = []; // kept to redraw the list in another language
// The verifier's reasons, as the gateway words them, to their catalogue entries.
const AUDIT_REASONS = {
  "its contents were changed after it was written": "audit.reason.changed",
  "the entry before it was removed or changed": "audit.reason.removed",
};

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

function query() {
  const params = new URLSearchParams({ measurement: $("#measurement").value });
  for (const key of ["resident", "device"]) if ($(`#${key}`).value.trim()) params.set(key, $(`#${key}`).value.trim());
  params.set("start", new Date($("#start").value).toISOString());
  params.set("end", new Date($("#end").value).toISOString());
  if ($("#every").value) params.set("every", $("#every").value);
  return params;
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin" }).catch(() => {
    throw new Error(t("error.network"));
  });
  if (response.status === 401) { location.href = "/"; return null; }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const status = response.status;
    throw new Error(body.detail ? t("error.detail", { status, detail: body.detail }) : t("error.http", { status }));
  }
  return body;
}

function renderAlarms() {
  $("#alarms").replaceChildren(...shownAlarms.map((a) => {
    const li = document.createElement("li");
    li.dataset.incidentId = a.id;
    li.textContent = [formatTime(a.opened_at), label("rule", a.rule), label("severity", a.severity),
      a.resident_name || a.device_id, label("status", a.status)].join(" · ");
    return li;
  }));
}

function drawChart(rows, alarms, start, end) {
  const chart = $("#chart");
  chart.replaceChildren();
  const width = chart.clientWidth || 800, height = chart.clientHeight || 320, pad = 40;
  const points = rows.filter((r) => typeof r.value === "number" || typeof r.value === "boolean")
    .map((r) => [Date.parse(r.time), Number(r.value)]);
  const t0 = start.getTime(), t1 = end.getTime();
  const values = points.map((p) => p[1]);
  const lo = Math.min(...values, 0), hi = Math.max(...values, 1);
  const x = (ms) => pad + ((ms - t0) / (t1 - t0)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - lo) / (hi - lo || 1)) * (height - 2 * pad);
  chart.append(svg("line", { class: "axis", x1: pad, y1: height - pad, x2: width - pad, y2: height - pad }),
    svg("line", { class: "axis", x1: pad, y1: pad, x2: pad, y2: height - pad }),
    svg("text", { x: 4, y: pad }, String(hi)), svg("text", { x: 4, y: height - pad }, String(lo)),
    svg("text", { x: pad, y: height - 10 }, formatTime(start.toISOString())),
    svg("text", { x: width - pad - 90, y: height - 10 }, formatTime(end.toISOString())));
  for (const alarm of alarms) {
    const at = x(Date.parse(alarm.opened_at));
    chart.append(svg("line", { class: "alarm", x1: at, y1: pad, x2: at, y2: height - pad }));
  }
  if (points.length) {
    const d = points.map(([ms, v], i) => `${i ? "L" : "M"}${x(ms).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    chart.append(svg("path", { class: "line", d, "data-points": points.length }));
  }
}

let auditChain = { state: "checking" };

function renderAuditChain() {
  const node = $("#audit-chain");
  const { state, report, error } = auditChain;
  node.dataset.state = state;
  if (state === "intact") node.textContent = t("audit.intact", { n: report.verified });
  else if (state === "broken") {
    const reason = AUDIT_REASONS[report.reason] ? t(AUDIT_REASONS[report.reason]) : report.reason;
    node.textContent = t("audit.broken", {
      id: report.first_broken_id, action: report.first_broken_action,
      at: formatTime(report.first_broken_at), reason, n: report.verified,
    });
  } else if (state === "error") node.textContent = t("audit.error", { error });
  else node.textContent = t("audit.checking");
}

async function checkAuditChain() {
  try {
    const report = await getJson("/api/audit/verify");
    if (!report) return;
    auditChain = { state: report.intact ? "intact" : "broken", report };
  } catch (err) {
    auditChain = { state: "error", error: err.message };
  }
  renderAuditChain();
}

async function show(event) {
  event?.preventDefault();
  $("#review-error").hidden = true;
  const params = query();
  $("#csv").href = `/api/sensor-log?${params}&format=csv`;
  try {
    const [log, alarms] = await Promise.all([
      getJson(`/api/sensor-log?${params}`),
      getJson(`/api/review/alarms?${new URLSearchParams([...params].filter(([k]) => k !== "measurement" && k !== "every"))}`),
    ]);
    if (!log) return;
    $("#summary").textContent = log.rows.length ? t("review.points", { n: log.rows.length }) : t("review.noData");
    drawChart(log.rows, alarms, new Date(log.start), new Date(log.end));
    shownAlarms = alarms;
    renderAlarms();
  } catch (err) {
    $("#review-error").textContent = err.message;
    $("#review-error").hidden = false;
  }
}

async function main() {
  const me = await getJson("/api/me").catch(() => null);
  if (!me) { location.href = "/"; return; }
  setLanguage(initialLanguage(me));
  $("#lang").value = document.documentElement.lang;
  translatePage();
  renderAuditChain();
  $("#lang").addEventListener("change", () => {
    setLanguage($("#lang").value);
    rememberLanguage($("#lang").value, me.username);
    translatePage();
    renderAlarms();
    renderAuditChain();
  });
  const now = new Date();
  // The input holds whole minutes: round up, or what happened this minute would fall outside the period.
  $("#end").value = localInput(new Date(now.getTime() + 60 * 1000));
  $("#start").value = localInput(new Date(now.getTime() - 24 * 3600 * 1000));
  const params = new URLSearchParams(location.search);
  for (const key of ["resident", "device", "measurement"]) if (params.get(key)) $(`#${key}`).value = params.get(key);
  $("#review-form").addEventListener("submit", show);
  checkAuditChain();
  show();
}

main();
