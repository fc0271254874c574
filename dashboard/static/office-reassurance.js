// The daily reassurance calls (GET /api/office/reassurance and /months): a day's calls per resident with
// their outcome, and per site and month the calls placed and answered. Outcomes carry a sign and a word.
import { t, formatTime } from "/static/i18n.js";
import { $, api, el, hideError, showError, startPage, downloadLink } from "/static/page.js";
import { fillTable } from "/static/office.js";

const OUTCOME_SIGN = { well: "✔", needs_help: "✚", no_answer: "✘", pending: "…" };
let day = null;
let months = null;

function outcome(row) {
  const code = row.outcome || "pending";
  return el("span", { class: `outcome outcome-${code}`, "data-outcome": code },
    `${OUTCOME_SIGN[code]} ${t(`reassurance.outcome.${code}`)}`);
}

const DAY_COLUMNS = [
  ["reassurance.page.resident", (r) => r.resident_name],
  ["reassurance.page.site", (r) => r.site_name],
  ["reassurance.page.channel", (r) => t(`reassurance.channel.${r.channel}`)],
  ["office.col.at", (r) => formatTime(r.first_at)],
  ["reassurance.page.attempts", (r) => r.attempts],
  ["reassurance.page.last_status", (r) => r.last_status],
  ["reassurance.page.outcome", outcome],
  ["reassurance.page.incident", (r) => (r.incident_id
    ? el("a", { href: `/incident/${r.incident_id}`, text: `#${r.incident_id}` }) : "—")],
];

const MONTH_COLUMNS = [
  ["reassurance.page.site", (m) => m.site_name],
  ["reassurance.page.month", (m) => m.month],
  ["reassurance.page.placed", (m) => m.placed],
  ["reassurance.page.answered", (m) => m.answered],
  ["reassurance.outcome.well", (m) => m.well],
  ["reassurance.outcome.needs_help", (m) => m.help],
  ["reassurance.outcome.no_answer", (m) => m.no_answer],
];

function render() {
  if (day) {
    fillTable($("#day-table"), DAY_COLUMNS, day.residents);
    $("#day-none").hidden = day.residents.length > 0;
  }
  if (months) fillTable($("#months-table"), MONTH_COLUMNS, months.months);
}

async function show(event) {
  event?.preventDefault();
  try {
    const query = $("#day").value ? { day: $("#day").value } : {};
    $("#day-csv").href = downloadLink("/api/office/reassurance", { ...query, format: "csv" });
    day = await api(downloadLink("/api/office/reassurance", query));
    $("#day").value = day.day;
    hideError();
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "reassurance.page.title", onLanguage: render });
  $("#day-form").addEventListener("submit", show);
  $("#months-csv").href = downloadLink("/api/office/reassurance/months", { format: "csv" });
  months = await api("/api/office/reassurance/months");
  await show();
}

main().catch(showError);
