// The audit trail with filters (period, who, action, incident, text), paged, and the state of its hash
// chain as the gateway recomputes it (GET /api/audit/verify).
import { t, label, formatTime } from "/static/i18n.js";
import { $, api, el, errorText, hideError, showError, startPage, downloadLink } from "/static/page.js";
import { fillTable, periodParams, setUpPeriod } from "/static/office.js";

const PAGE_SIZE = 50;
// The verifier's reasons, as the gateway words them, to their catalogue entries.
const REASONS = {
  "its contents were changed after it was written": "audit.reason.changed",
  "the entry before it was removed or changed": "audit.reason.removed",
};
let offset = 0;
let shown = null;
let chain = { state: "checking" };

function renderChain() {
  const node = $("#audit-chain");
  const { state, report, error } = chain;
  node.dataset.state = state;
  if (state === "intact") node.textContent = `✔ ${t("audit.intact", { n: report.verified })}`;
  else if (state === "broken") {
    const reason = REASONS[report.reason] ? t(REASONS[report.reason]) : report.reason;
    node.textContent = `✘ ${t("audit.broken", {
      id: report.first_broken_id, action: report.first_broken_action,
      at: formatTime(report.first_broken_at, { full: true }), reason, n: report.verified,
    })}`;
  } else if (state === "error") node.textContent = `✘ ${t("audit.error", { error })}`;
  else node.textContent = t("audit.checking");
}

async function checkChain() {
  try {
    const report = await api("/api/audit/verify");
    chain = { state: report.intact ? "intact" : "broken", report };
  } catch (err) {
    chain = { state: "error", error: errorText(err) };
  }
  renderChain();
}

function filters() {
  const query = periodParams($("#period").value);
  for (const key of ["actor", "action", "incident", "text"]) {
    const value = $(`#${key}`).value.trim();
    if (value) query[key] = value;
  }
  return query;
}

// Long details (a whole site's settings) are cut on the screen; the tooltip and the CSV hold them whole.
const DETAILS_SHOWN = 240;
function details(d) {
  if (!d || !Object.keys(d).length) return "—";
  const text = JSON.stringify(d);
  const shown = text.length > DETAILS_SHOWN ? `${text.slice(0, DETAILS_SHOWN)}…` : text;
  return el("span", { class: "details", title: text, text: shown });
}

const COLUMNS = [
  ["office.col.id", (e) => e.id],
  ["office.col.at", (e) => formatTime(e.at, { full: true })],
  ["office.actor", (e) => e.actor],
  ["office.action", (e) => label("office.action", e.action)],
  ["office.incident", (e) => (e.incident_id ? el("a", { href: `/incident/${e.incident_id}`, text: `#${e.incident_id}` }) : "—")],
  ["office.col.details", (e) => details(e.details)],
];

function render() {
  if (!shown) return;
  fillTable($("#audit-table"), COLUMNS, shown.entries);
  $("#audit-total").textContent = t("office.totalEntries", { n: shown.total });
  const last = Math.min(shown.offset + shown.entries.length, shown.total);
  $("#page-at").textContent = shown.total ? t("office.pageAt", { from: shown.offset + 1, to: last, n: shown.total }) : "";
  $("#prev").disabled = shown.offset === 0;
  $("#next").disabled = last >= shown.total;
}

async function show(event, at = 0) {
  event?.preventDefault();
  offset = at;
  try {
    const query = filters();
    $("#audit-csv").href = downloadLink("/api/office/audit", { ...query, format: "csv" });
    shown = await api(downloadLink("/api/office/audit", { ...query, offset, limit: PAGE_SIZE }));
    hideError();
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "nav.audit", onLanguage: () => { renderChain(); render(); } });
  setUpPeriod();
  $("#audit-form").addEventListener("submit", (e) => show(e, 0));
  $("#prev").addEventListener("click", () => show(null, Math.max(0, offset - PAGE_SIZE)));
  $("#next").addEventListener("click", () => show(null, offset + PAGE_SIZE));
  await Promise.all([checkChain(), show()]);
}

main().catch(showError);
