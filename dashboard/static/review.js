// Managers' sensor-log review: the readings of a resident, a room or a device over a period from
// /api/sensor-log, drawn with Apache ECharts (loaded before this module as a classic script) together
// with the alarms raised in the same period (/api/review/alarms) on the same time axis; a CSV export of
// exactly what is shown.
import { t, label, formatTime, getLanguage } from "/static/i18n.js";
import { $, api, el, hideError, showError, startPage, downloadLink } from "/static/page.js";

const HOUR_MS = 3600 * 1000;
const PERIODS = { "24h": 24 * HOUR_MS, "7d": 7 * 24 * HOUR_MS };
// The verifier's reasons, as the gateway words them, to their catalogue entries.
const AUDIT_REASONS = {
  "its contents were changed after it was written": "audit.reason.changed",
  "the entry before it was removed or changed": "audit.reason.removed",
};
// What can be reviewed, from the directory: [{scope, site, id, text()}].
let targets = [];
let shown = null; // { log, alarms, start, end }, kept to redraw in another language
let chart = null;
let auditChain = { state: "checking" };

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

async function loadTargets() {
  const [sites, residents, devices] = await Promise.all(["sites", "residents", "devices"].map(
    (kind) => api(`/api/directory/${kind}?limit=500`).then((page) => page.items),
  ));
  const siteName = Object.fromEntries(sites.map((s) => [s.id, s.name]));
  targets = [
    ...residents.filter((r) => r.status !== "discharged").map((r) => ({
      scope: "resident", site: r.site, id: r.id, text: () => `${r.name} · ${siteName[r.site] ?? r.site}`,
    })),
    ...sites.flatMap((s) => (s.rooms ?? []).map((room) => ({
      scope: "room", site: s.id, id: room.id,
      text: () => `${s.name} · ${t("board.room", { room: room.name || room.id })}`,
    }))),
    ...devices.filter((d) => d.state === "active").map((d) => ({
      scope: "device", site: d.site, id: d.id,
      text: () => `${d.id} · ${label("device_type", d.type)} · ${siteName[d.site] ?? d.site}`,
    })),
  ];
}

function fillTargets(keep) {
  const scope = $("#scope").value;
  const options = targets.map((target, index) => [target, index]).filter(([target]) => target.scope === scope)
    .map(([target, index]) => el("option", { value: String(index) }, target.text()));
  $("#target").replaceChildren(...options);
  if (keep !== undefined && targets[keep]?.scope === scope) $("#target").value = String(keep);
}

function period() {
  if ($("#period").value === "custom") {
    return { start: new Date($("#start").value), end: new Date($("#end").value) };
  }
  const end = new Date();
  return { start: new Date(end.getTime() - PERIODS[$("#period").value]), end };
}

// The filters of what is reviewed: its site and the resident, room or device.
function selection() {
  const target = targets[Number($("#target").value)];
  return target ? { site: target.site, [target.scope]: target.id } : null;
}

function renderAlarms() {
  const alarms = shown?.alarms ?? [];
  $("#no-alarms").hidden = !shown || alarms.length > 0;
  $("#alarms").replaceChildren(...alarms.map((a) => el("li", { "data-incident-id": a.id },
    el("a", { href: `/incident/${a.id}` }, [formatTime(a.opened_at, { full: true }), `⚠ ${label("rule", a.rule)}`,
      label("severity", a.severity), a.resident_name || a.device_id, label("status", a.status)].join(" · ")))));
}

function seriesOf(rows) {
  const byDevice = new Map();
  for (const row of rows) {
    if (typeof row.value !== "number" && typeof row.value !== "boolean") continue;
    const device = row.tags.device ?? "";
    if (!byDevice.has(device)) byDevice.set(device, []);
    byDevice.get(device).push([Date.parse(row.time), Number(row.value)]);
  }
  const onOff = rows.some((row) => typeof row.value === "boolean");
  return [...byDevice].map(([device, data]) => ({
    id: `device:${device}`, name: device || t("review.readings"), type: "line", data,
    showSymbol: data.length < 200, step: onOff ? "end" : false, emphasis: { focus: "series" },
  }));
}

// The period's alarms on the same time axis: a dashed red line each, labelled with the rule's name (the
// words say what happened; the colour only repeats it).
function alarmSeries(alarms) {
  return {
    id: "alarms", name: t("review.alarmSeries"), type: "line", data: [], color: "#f85149",
    markLine: {
      symbol: "none", silent: false, animation: false,
      lineStyle: { color: "#f85149", type: "dashed", width: 2 },
      label: { formatter: "⚠ {b}", color: "#ffb3ae", position: "insideEndTop" },
      data: alarms.map((a) => ({ name: label("rule", a.rule), xAxis: Date.parse(a.opened_at), incident: a.id })),
    },
  };
}

function drawChart() {
  if (!shown) return;
  chart?.dispose();
  const lang = getLanguage();
  chart = window.echarts.init($("#chart"), null, { locale: lang === "zh-CN" ? "ZH" : "EN", renderer: "svg" });
  const text = { color: "#e8edf2", fontSize: 14 };
  chart.setOption({
    backgroundColor: "transparent",
    textStyle: text,
    animation: false,
    legend: { top: 4, textStyle: text },
    tooltip: { trigger: "axis" },
    grid: { left: 56, right: 24, top: 40, bottom: 80 },
    xAxis: { type: "time", min: shown.start.getTime(), max: shown.end.getTime(), axisLabel: text },
    yAxis: { type: "value", scale: true, axisLabel: text, splitLine: { lineStyle: { color: "#2e3843" } } },
    dataZoom: [{ type: "inside" }, { type: "slider", bottom: 16, textStyle: text }],
    series: [...seriesOf(shown.log.rows), alarmSeries(shown.alarms)],
  });
}

function renderSummary() {
  if (!shown) return;
  const n = shown.log.rows.length;
  $("#summary").textContent = n ? t("review.points", { n }) : t("review.noData");
}

async function show(event) {
  event?.preventDefault();
  const chosen = selection();
  if (!chosen) { $("#summary").textContent = t("review.noTargets"); return; }
  const { start, end } = period();
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) {
    $("#summary").textContent = t("review.badPeriod");
    return;
  }
  const where = { ...chosen, start: start.toISOString(), end: end.toISOString() };
  const reading = { ...where, measurement: $("#measurement").value };
  if ($("#every").value) Object.assign(reading, { every: $("#every").value, fn: $("#fn").value });
  $("#csv").href = downloadLink("/api/sensor-log", { ...reading, format: "csv" });
  try {
    const [log, alarms] = await Promise.all([
      api(downloadLink("/api/sensor-log", reading)),
      api(downloadLink("/api/review/alarms", where)),
    ]);
    hideError();
    shown = { log, alarms, start: new Date(log.start), end: new Date(log.end) };
    renderSummary();
    drawChart();
    renderAlarms();
  } catch (err) {
    showError(err);
  }
}

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
    const report = await api("/api/audit/verify");
    auditChain = { state: report.intact ? "intact" : "broken", report };
  } catch (err) {
    auditChain = { state: "error", error: err.message };
  }
  renderAuditChain();
}

// A link such as /review?resident=night-wang (or room=101&site=night, device=...) opens on that target.
function targetFromUrl(params) {
  for (const scope of ["resident", "room", "device"]) {
    const id = params.get(scope);
    if (!id) continue;
    const index = targets.findIndex((target) => target.scope === scope && target.id === id
      && (!params.get("site") || target.site === params.get("site")));
    if (index >= 0) return index;
  }
  return undefined;
}

async function main() {
  await startPage({
    heading: "review.title",
    onLanguage: () => {
      const keep = $("#target").value;
      fillTargets(keep === "" ? undefined : Number(keep));
      renderSummary();
      drawChart();
      renderAlarms();
      renderAuditChain();
    },
  });
  renderAuditChain();
  await loadTargets();
  const params = new URLSearchParams(location.search);
  const chosen = targetFromUrl(params);
  if (chosen !== undefined) $("#scope").value = targets[chosen].scope;
  fillTargets(chosen);
  if (params.get("measurement")) $("#measurement").value = params.get("measurement");
  const now = new Date();
  // The inputs hold whole minutes: round up, or what happened this minute would fall outside the period.
  $("#end").value = localInput(new Date(now.getTime() + 60 * 1000));
  $("#start").value = localInput(new Date(now.getTime() - 24 * HOUR_MS));
  $("#scope").addEventListener("change", () => fillTargets());
  $("#period").addEventListener("change", () => {
    for (const node of document.querySelectorAll(".custom-period")) node.hidden = $("#period").value !== "custom";
  });
  $("#review-form").addEventListener("submit", show);
  window.addEventListener("resize", () => chart?.resize());
  checkAuditChain();
  await show();
}

main().catch(showError);
