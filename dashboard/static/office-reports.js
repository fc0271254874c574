// The response-time report: KPI tiles against the TEC Quality yardsticks, the shares by day or month
// with the two target lines (ECharts), a table per group and the false alarms; CSV of every table.
import { t, label, getLanguage } from "/static/i18n.js";
import { $, api, hideError, showError, startPage, downloadLink } from "/static/page.js";
import {
  fillSites, fillTable, groupLabel, loadSites, percent, periodParams, seconds, setUpPeriod, verdict,
} from "/static/office.js";

const echarts = window.echarts;
let shown = null; // the last answers, kept to redraw in another language
let sites = [];
let charts = { shares: null, falseAlarms: null };

function params() {
  const query = { ...periodParams($("#period").value) };
  if ($("#site").value) query.site = $("#site").value;
  return query;
}

// The chart needs days or months even when the table is for the whole period.
function chartBucket(query) {
  if ($("#bucket").value !== "none") return $("#bucket").value;
  return Date.parse(query.end) - Date.parse(query.start) > 62 * 86400000 ? "month" : "day";
}

function siteNames() {
  return Object.fromEntries(sites.map((s) => [s.id, s.name || s.id]));
}

function renderTiles(total) {
  $("#kpi-incidents").textContent = String(total.incidents);
  $("#kpi-ack-median").textContent = seconds(total.ack_median_s);
  $("#kpi-ack-p90").textContent = seconds(total.ack_p90_s);
  for (const within of [60, 180]) {
    $(`#kpi-share-${within}`).textContent = percent(total[`share_${within}s`]);
    $(`#kpi-verdict-${within}`).replaceChildren(verdict(total[`met_${within}s`]));
    $(`#tile-${within}`).dataset.met = String(total[`met_${within}s`]);
  }
}

const GROUP_COLUMNS = (group) => [
  [`office.group.${group}`, (r) => groupLabel(group, r.group, siteNames())],
  ["office.col.bucket", (r) => r.bucket ?? t("office.bucket.none")],
  ["office.col.incidents", (r) => r.incidents],
  ["office.col.ackMedian", (r) => seconds(r.ack_median_s)],
  ["office.col.ackP90", (r) => seconds(r.ack_p90_s)],
  ["office.col.ackMean", (r) => seconds(r.ack_mean_s)],
  ["office.col.resolveMedian", (r) => seconds(r.resolve_median_s)],
  ["office.col.resolveP90", (r) => seconds(r.resolve_p90_s)],
  ["office.col.share60", (r) => percent(r.share_60s)],
  ["office.col.met60", (r) => verdict(r.met_60s)],
  ["office.col.share180", (r) => percent(r.share_180s)],
  ["office.col.met180", (r) => verdict(r.met_180s)],
];

const FALSE_COLUMNS = (by) => [
  [by === "device" ? "office.by.device" : "office.by.rule", (r) => (by === "rule" ? label("rule", r.key) : r.key)],
  ["office.site", (r) => (r.site ? siteNames()[r.site] || r.site : "—")],
  ["office.col.incidents", (r) => r.incidents],
  ["office.col.falseAlarms", (r) => r.false_alarms],
  ["office.col.falseRate", (r) => percent(r.false_alarm_rate)],
  ["office.col.cancelled", (r) => r.cancelled_by_resident],
  ["office.col.cancelledRate", (r) => percent(r.cancelled_rate)],
];

function chartOf(key, node) {
  if (!charts[key]) {
    charts[key] = echarts.init(node, null, { locale: getLanguage() === "zh-CN" ? "ZH" : "EN", renderer: "svg" });
  }
  return charts[key];
}

// Languages change the chart's own texts (locale) too: it is made again.
function resetCharts() {
  for (const chart of Object.values(charts)) chart?.dispose();
  charts = { shares: null, falseAlarms: null };
}

function drawShares(series) {
  const chart = chartOf("shares", $("#share-chart"));
  const buckets = series.map((r) => r.bucket);
  // The two target lines lie 1.5 points apart: one label above its line, the other below.
  const line = (key, name, target, position) => ({
    name, type: "line", data: series.map((r) => (r[key] === null ? null : Number((r[key] * 100).toFixed(2)))),
    connectNulls: false, symbolSize: 7,
    markLine: { symbol: "none", label: { formatter: `${t("office.target")} ${target} %`, position, color: "#e8edf2", fontSize: 13 },
      lineStyle: { type: "dashed" }, data: [{ yAxis: target }] },
  });
  chart.setOption({
    backgroundColor: "transparent",
    textStyle: { fontSize: 14 },
    tooltip: { trigger: "axis", valueFormatter: (v) => (v === null || v === undefined ? "—" : `${v} %`) },
    legend: { textStyle: { color: "#e8edf2", fontSize: 14 } },
    grid: { left: 60, right: 30, top: 40, bottom: 40 },
    xAxis: { type: "category", data: buckets, axisLabel: { color: "#a3b0bd" } },
    yAxis: { type: "value", min: (v) => Math.max(0, Math.floor(Math.min(v.min, 95) - 1)), max: 100,
      axisLabel: { color: "#a3b0bd", formatter: "{value} %" }, splitLine: { lineStyle: { color: "#2e3843" } } },
    series: [line("share_60s", t("office.kpi.within60"), 97.5, "insideEndBottom"),
      line("share_180s", t("office.kpi.within180"), 99, "insideEndTop")],
  }, true);
}

function drawFalseAlarms(rows, by) {
  const chart = chartOf("falseAlarms", $("#fa-chart"));
  const top = rows.slice(0, 15);
  const names = top.map((r) => (by === "rule" ? label("rule", r.key) : r.key));
  chart.setOption({
    backgroundColor: "transparent",
    tooltip: { trigger: "axis" },
    legend: { textStyle: { color: "#e8edf2", fontSize: 14 } },
    grid: { left: 60, right: 30, top: 40, bottom: 70 },
    xAxis: { type: "category", data: names, axisLabel: { color: "#a3b0bd", rotate: 30 } },
    yAxis: { type: "value", minInterval: 1, axisLabel: { color: "#a3b0bd" }, splitLine: { lineStyle: { color: "#2e3843" } } },
    series: [
      { name: t("office.col.falseAlarms"), type: "bar", stack: "n", data: top.map((r) => r.false_alarms) },
      { name: t("office.col.cancelled"), type: "bar", stack: "n", data: top.map((r) => r.cancelled_by_resident) },
    ],
  }, true);
}

function render() {
  if (!shown) return;
  const { report, chartSeries, falseAlarms } = shown;
  $("#period-shown").textContent = t("office.periodShown", {
    start: new Date(report.start).toLocaleString(), end: new Date(report.end).toLocaleString(),
  });
  renderTiles(report.total);
  fillTable($("#groups-table"), GROUP_COLUMNS(report.group), report.rows);
  fillTable($("#fa-table"), FALSE_COLUMNS(falseAlarms.by), falseAlarms.rows);
  drawShares(chartSeries);
  drawFalseAlarms(falseAlarms.rows, falseAlarms.by);
}

async function show(event) {
  event?.preventDefault();
  try {
    const query = params();
    const group = $("#group").value, bucket = $("#bucket").value, by = $("#fa-by").value;
    const table = { ...query, group, bucket };
    const chart = { ...query, group: "site", bucket: chartBucket(query) };
    const wrong = { ...query, by };
    $("#groups-csv").href = downloadLink("/api/reports/response-times", { ...table, format: "csv" });
    $("#fa-csv").href = downloadLink("/api/reports/false-alarms", { ...wrong, format: "csv" });
    const [report, forChart, falseAlarms] = await Promise.all([
      api(downloadLink("/api/reports/response-times", table)),
      bucket === "none" ? api(downloadLink("/api/reports/response-times", chart)) : null,
      api(downloadLink("/api/reports/false-alarms", wrong)),
    ]);
    shown = { report, chartSeries: (forChart || report).series, falseAlarms };
    hideError();
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "nav.reports", onLanguage: () => { resetCharts(); fillSites($("#site"), sites); render(); } });
  sites = await loadSites();
  fillSites($("#site"), sites);
  setUpPeriod();
  $("#report-form").addEventListener("submit", show);
  $("#fa-by").addEventListener("change", show);
  window.addEventListener("resize", () => { for (const c of Object.values(charts)) c?.resize(); });
  await show();
}

main().catch(showError);
