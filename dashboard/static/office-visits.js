// The managers' view of home visits: done against planned per carer and per site over a period, late
// and missed counted (a stacked bar per carer, ECharts), CSV of both tables.
import { t, getLanguage } from "/static/i18n.js";
import { $, api, hideError, showError, startPage, downloadLink } from "/static/page.js";
import { fillSites, fillTable, loadSites, percent, periodParams, setUpPeriod } from "/static/office.js";

const echarts = window.echarts;
let shown = null;
let sites = [];
let chart = null;

function params() {
  const query = { ...periodParams($("#period").value) };
  if ($("#site").value) query.site = $("#site").value;
  return query;
}

const siteName = (id) => (sites.find((s) => s.id === id) || {}).name || id;
const COUNTS = [
  ["visits.office.planned", (r) => r.planned],
  ["visits.office.done", (r) => r.done],
  ["visits.office.late", (r) => r.late],
  ["visits.office.missed", (r) => r.missed],
  ["visits.office.pending", (r) => r.pending],
  ["visits.office.share", (r) => percent(r.done_share)],
];

function drawChart(carers) {
  chart?.dispose();
  chart = echarts.init($("#visits-chart"), null, { locale: getLanguage() === "zh-CN" ? "ZH" : "EN", renderer: "svg" });
  const names = carers.map((r) => r.name);
  // Done on time, done late, missed: stacked, each with its own name in the legend (not colour alone).
  const series = [
    ["visits.office.done", (r) => r.done - r.late, "#2fbf71"],
    ["visits.office.late", (r) => r.late, "#f2c94c"],
    ["visits.office.missed", (r) => r.missed, "#d62828"],
  ].map(([key, value, color]) => ({
    name: t(key), type: "bar", stack: "visits", data: carers.map(value), itemStyle: { color },
    label: { show: true, position: "inside", formatter: (p) => (p.value ? String(p.value) : "") },
  }));
  chart.setOption({
    textStyle: { color: "#e8edf2", fontSize: 15 },
    legend: { textStyle: { color: "#e8edf2", fontSize: 15 } },
    tooltip: { trigger: "axis" },
    grid: { left: 16, right: 24, top: 40, bottom: 30, containLabel: true },
    xAxis: { type: "value", minInterval: 1, axisLabel: { color: "#a3b0bd" } },
    yAxis: { type: "category", data: names, axisLabel: { color: "#e8edf2", fontSize: 15 } },
    series,
  });
}

function render() {
  if (!shown) return;
  const { carers, sites: perSite } = shown;
  fillTable($("#carers-table"), [["visits.office.carer", (r) => r.name], ["visits.office.site", (r) => siteName(r.site)], ...COUNTS], carers);
  fillTable($("#sites-table"), [["visits.office.site", (r) => siteName(r.site)], ...COUNTS], perSite);
  $("#none").hidden = carers.length > 0;
  $("#period-shown").textContent = `${new Date(shown.start).toLocaleString(getLanguage())} – ${new Date(shown.end).toLocaleString(getLanguage())}`;
  drawChart(carers);
}

// Each "Show" outdates the answers still on their way: the page's first load, slow to come back, must
// not replace the period asked for since.
let asked = 0;

async function show() {
  const mine = ++asked;
  try {
    hideError();
    const query = params();
    const answer = await api(downloadLink("/api/office/visits", query));
    if (mine !== asked) return;
    shown = answer;
    $("#visits-csv").href = downloadLink("/api/office/visits", { ...query, format: "csv" });
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "visits.office.title", onLanguage: render });
  sites = await loadSites();
  fillSites($("#site"), sites);
  setUpPeriod();
  $("#visits-form").addEventListener("submit", (event) => { event.preventDefault(); show(); });
  window.addEventListener("resize", () => chart?.resize());
  await show();
}

main().catch(showError);
