// Service-quality indicators per site and month: one table, the same rows as the CSV the office takes.
// Verdicts against the yardsticks are a symbol and words, never colour alone.
import { t } from "/static/i18n.js";
import { $, api, hideError, showError, startPage, downloadLink } from "/static/page.js";
import { fillSites, fillTable, loadSites, percent, seconds, verdict } from "/static/office.js";

let shown = null;
let sites = [];

function monthInput(date) {
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}`;
}

function params() {
  const query = { first: $("#first").value, last: $("#last").value };
  if ($("#site").value) query.site = $("#site").value;
  return query;
}

// "done of planned (share)", or a dash where nothing was planned.
function ofTotal(done, total) {
  if (total === null || total === undefined || total === 0) return "—";
  return t("quality.ofTotal", { done: done ?? 0, total, share: percent((done ?? 0) / total) });
}

function against(share, target) {
  const cell = document.createElement("span");
  cell.append(percent(share), " ");
  cell.append(verdict(share === null || share === undefined ? null : share >= target));
  return cell;
}

const COLUMNS = (names) => [
  ["office.site", (r) => names[r.site] || r.site],
  ["quality.col.month", (r) => r.month],
  ["office.col.incidents", (r) => r.incidents],
  ["office.col.share60", (r) => against(r.share_60s, 0.975)],
  ["office.col.share180", (r) => against(r.share_180s, 0.99)],
  ["office.col.ackMedian", (r) => seconds(r.ack_median_s)],
  ["quality.col.falseAlarmRate", (r) => (r.incidents ? `${r.false_alarms} · ${percent(r.false_alarm_rate)}` : "—")],
  ["quality.col.tests", (r) => ofTotal(r.device_weeks_tested, r.device_weeks)],
  ["quality.col.visits", (r) => ofTotal(r.visits_done, r.visits_planned)],
  ["quality.col.visitsMissed", (r) => (r.visits_planned ? r.visits_missed ?? 0 : "—")],
  ["quality.col.calls", (r) => ofTotal(r.calls_answered, r.calls_placed)],
  ["quality.col.days", (r) => (r.calls_placed
    ? t("quality.days", { well: r.days_well ?? 0, help: r.days_help ?? 0, none: r.days_no_answer ?? 0 })
    : "—")],
];

function render() {
  if (!shown) return;
  fillTable($("#quality-table"), COLUMNS(shown.site_names), shown.rows);
}

async function show(event) {
  event?.preventDefault();
  try {
    const query = params();
    $("#quality-csv").href = downloadLink("/api/reports/quality", { ...query, format: "csv" });
    shown = await api(downloadLink("/api/reports/quality", query));
    hideError();
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "quality.title", onLanguage: () => { fillSites($("#site"), sites); render(); } });
  sites = await loadSites();
  fillSites($("#site"), sites);
  const now = new Date();
  $("#last").value = monthInput(now);
  $("#first").value = monthInput(new Date(now.getFullYear(), now.getMonth() - 2, 1));
  $("#quality-form").addEventListener("submit", show);
  await show();
}

main().catch(showError);
