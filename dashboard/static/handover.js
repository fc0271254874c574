// Shift handover: what happened on this shift and what is still open (the gateway's draft), the previous
// shift's notes, and this shift's notes signed for the next one.
import { t, label, formatTime } from "/static/i18n.js";
import { $, api, el, showError, errorText, startPage } from "/static/page.js";

const view = { draft: null, latest: null, history: [] };

const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
const where = (inc) => {
  const site = inc.site_name || inc.site || "";
  return inc.room ? `${site} · ${inc.room}` : site || "—";
};
const author = (h) => h.author || h.signed_by || h.username || "—";
const signedAt = (h) => h.signed_at || h.at || h.created_at;

function incidentRow(inc, last) {
  return el("tr", { "data-incident-id": inc.id },
    el("td", { text: label("rule", inc.rule) }),
    el("td", { text: inc.resident_name || inc.resident || "—" }),
    el("td", { text: where(inc) }),
    el("td", { text: formatTime(inc.opened_at) }),
    el("td", { text: label("status", inc.status) }),
    el("td", { text: last(inc) }));
}

function fillTable(selector, emptySelector, countSelector, incidents, last) {
  $(`${selector} tbody`).replaceChildren(...incidents.map((inc) => incidentRow(inc, last)));
  $(emptySelector).hidden = incidents.length > 0;
  $(selector).hidden = incidents.length === 0;
  $(countSelector).textContent = `(${incidents.length})`;
}

function render() {
  const draft = view.draft || {};
  const open = draft.still_open || [];
  // What happened: the alarms that came in on this shift and those this operator handled, once each.
  const happened = [...new Map([...(draft.opened || []), ...(draft.handled || [])].map((inc) => [inc.id, inc])).values()]
    .sort((a, b) => String(a.opened_at).localeCompare(String(b.opened_at)));
  $("#shift-period").textContent = draft.shift_start
    ? t("console.handover.period", { from: formatTime(draft.shift_start), to: formatTime(draft.shift_end) })
    : "";
  fillTable("#happened", "#happened-empty", "#happened-count", happened,
    (inc) => (inc.outcome ? label("outcome", inc.outcome) : "—"));
  fillTable("#still-open", "#open-empty", "#open-count", open, (inc) => dash(inc.taken_by));

  const latest = view.latest;
  $("#previous").hidden = !latest;
  if (latest) {
    $("#previous-by").textContent = t("console.handover.from", { user: author(latest), time: formatTime(signedAt(latest)) });
    $("#previous-notes").textContent = latest.notes || t("console.handover.noNotes");
  }
  $("#history").replaceChildren(...view.history.map((h) => el("li", { "data-handover-id": h.id },
    el("span", { class: "muted", text: t("console.handover.from", { user: author(h), time: formatTime(signedAt(h)) }) }),
    el("br"), h.notes || t("console.handover.noNotes"))));
}

async function load() {
  const [draft, history] = await Promise.all([
    api("/api/handovers/draft"), api("/api/handovers?limit=10"),
  ]);
  view.draft = draft;
  view.history = Array.isArray(history) ? history : history?.handovers || [];
  view.latest = draft?.previous_handover || view.history[0] || null;
  render();
}

async function sign(event) {
  event.preventDefault();
  const notes = $("#handover-notes").value.trim();
  const error = $("#handover-error");
  error.hidden = true;
  $("#handover-submit").disabled = true;
  try {
    const signed = await api("/api/handovers", { method: "POST", body: { notes } });
    $("#handover-notes").value = "";
    $("#handover-signed").textContent = t("console.handover.signed", { user: author(signed), time: formatTime(signedAt(signed)) });
    $("#handover-signed").hidden = false;
    await load();
  } catch (err) {
    error.textContent = errorText(err);
    error.hidden = false;
  } finally {
    $("#handover-submit").disabled = false;
  }
}

async function main() {
  await startPage({ heading: "nav.handover", navClass: "nav", onLanguage: () => render() });
  $("#handover-form").addEventListener("submit", sign);
  try {
    await load();
  } catch (err) {
    showError(err);
  }
}

main().catch(showError);
