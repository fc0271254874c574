// Every incident with filters (period, site, wing, resident, alarm type, outcome, operator), paged,
// each linked to its incident screen and with its own timeline (audit entries and notifications) inline.
import { t, label, formatTime } from "/static/i18n.js";
import { $, api, el, hideError, showError, startPage, downloadLink } from "/static/page.js";
import { fillSites, fillTable, loadSites, periodParams, seconds, setUpPeriod } from "/static/office.js";

// The codes the filters offer; their words come from the catalogue.
const RULES = ["sos", "fall", "smoke", "door_night", "door_left_open", "inactivity", "missed_check_in",
  "bed_exit", "vitals", "device_health", "activity_baseline", "channel_failing",
  "reassurance_help", "reassurance_no_answer", "console_unstaffed", "visit_missed",
  // The risk rules (docs/risks.md).
  "repositioning_due", "falling_from_bed", "scalds", "locked_zone_exit", "fever_cluster"];
// Until the first answer names them all (`outcomes`, from the gateway's list).
let outcomes = ["assisted_on_site", "emergency_services_called", "false_alarm", "cancelled_by_resident",
  "technical_fault", "other"];
const PAGE_SIZE = 50;
let sites = [];
let offset = 0;
let shown = null;
const timelines = new Map(); // incident id → its audit entries and notifications, once opened

function codeOptions(select, prefix, codes) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "", text: t("office.any") }),
    ...codes.map((code) => el("option", { value: code, text: label(prefix, code) })));
  select.value = keep;
}

function fillWings() {
  const site = $("#site").value;
  const wings = new Map();
  for (const s of sites) {
    if (site && s.id !== site) continue;
    for (const w of s.wings || []) wings.set(w.id, w.name || w.id);
    for (const r of s.rooms || []) if (r.wing && !wings.has(r.wing)) wings.set(r.wing, r.wing);
  }
  const keep = $("#wing").value;
  $("#wing").replaceChildren(el("option", { value: "", text: t("office.any") }),
    ...[...wings].map(([id, name]) => el("option", { value: id, text: name })));
  $("#wing").value = wings.has(keep) ? keep : "";
}

function filters() {
  const query = periodParams($("#period").value);
  for (const key of ["site", "wing", "resident", "rule", "outcome", "operator"]) {
    const value = $(`#${key}`).value.trim();
    if (value) query[key] = value;
  }
  return query;
}

const delay = (from, to) => (from && to ? seconds((Date.parse(to) - Date.parse(from)) / 1000) : "—");

function timelineButton(incident) {
  const open = timelines.has(incident.id);
  const button = el("button", { type: "button", class: "timeline-toggle", "aria-expanded": String(open),
    "data-incident": incident.id, text: t(open ? "office.hideTimeline" : "office.timeline") });
  button.addEventListener("click", () => toggleTimeline(incident.id));
  return button;
}

const COLUMNS = [
  ["office.col.id", (i) => el("a", { href: i.link, text: `#${i.id}` })],
  ["office.col.opened", (i) => formatTime(i.opened_at, { full: true })],
  ["office.site", (i) => i.site_name],
  ["office.col.room", (i) => i.room || "—"],
  ["office.col.resident", (i) => i.resident_name || "—"],
  ["office.group.rule", (i) => label("rule", i.rule)],
  ["office.col.status", (i) => label("status", i.status)],
  ["office.col.toAck", (i) => delay(i.opened_at, i.acknowledged_at)],
  ["office.col.toResolve", (i) => delay(i.opened_at, i.resolved_at)],
  ["office.outcome", (i) => (i.outcome ? label("outcome", i.outcome) : "—")],
  ["office.operator", (i) => i.acknowledged_by || "—"],
  ["office.timeline", timelineButton],
];

function timelineRow(id) {
  const { audit, notifications } = timelines.get(id);
  const events = [
    ...audit.map((e) => ({ at: e.at, text: `${e.actor} · ${label("office.action", e.action)}${e.details?.note ? ` · ${e.details.note}` : ""}` })),
    ...notifications.map((n) => ({ at: n.created_at, text: t("office.notified", { responder: n.responder, channel: n.channel, status: n.status }) })),
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const list = el("ol", {}, ...events.map((e) => el("li", { text: `${formatTime(e.at, { full: true })} — ${e.text}` })));
  if (!events.length) list.append(el("li", { text: t("office.noEntries") }));
  return el("tr", { class: "timeline", "data-timeline": id }, el("td", { colspan: COLUMNS.length }, list));
}

async function toggleTimeline(id) {
  if (timelines.has(id)) timelines.delete(id);
  else {
    try {
      const [audit, notifications] = await Promise.all([
        api(`/api/incidents/${id}/audit`), api(`/api/incidents/${id}/escalation`),
      ]);
      timelines.set(id, { audit, notifications });
    } catch (err) {
      showError(err);
      return;
    }
  }
  render();
}

function render() {
  if (!shown) return;
  fillTable($("#history-table"), COLUMNS, shown.incidents);
  const rows = [...$("#history-table").querySelectorAll("tbody tr")];
  shown.incidents.forEach((incident, i) => {
    rows[i].dataset.incidentId = incident.id;
    if (timelines.has(incident.id)) rows[i].after(timelineRow(incident.id));
  });
  $("#history-total").textContent = t("office.total", { n: shown.total });
  const last = Math.min(shown.offset + shown.incidents.length, shown.total);
  $("#page-at").textContent = shown.total ? t("office.pageAt", { from: shown.offset + 1, to: last, n: shown.total }) : "";
  $("#prev").disabled = shown.offset === 0;
  $("#next").disabled = last >= shown.total;
}

async function show(event, at = 0) {
  event?.preventDefault();
  offset = at;
  try {
    const query = filters();
    $("#history-csv").href = downloadLink("/api/office/incidents", { ...query, format: "csv" });
    shown = await api(downloadLink("/api/office/incidents", { ...query, offset, limit: PAGE_SIZE }));
    if (shown.outcomes.join() !== outcomes.join()) {
      outcomes = shown.outcomes;
      codeOptions($("#outcome"), "outcome", outcomes);
    }
    hideError();
    render();
    document.body.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "nav.history", onLanguage: () => {
    codeOptions($("#rule"), "rule", RULES);
    codeOptions($("#outcome"), "outcome", outcomes);
    fillSites($("#site"), sites);
    fillWings();
    render();
  } });
  sites = await loadSites();
  fillSites($("#site"), sites);
  fillWings();
  $("#site").addEventListener("change", fillWings);
  setUpPeriod();
  $("#history-form").addEventListener("submit", (e) => show(e, 0));
  $("#prev").addEventListener("click", () => show(null, Math.max(0, offset - PAGE_SIZE)));
  $("#next").addEventListener("click", () => show(null, offset + PAGE_SIZE));
  await show();
}

main().catch(showError);
