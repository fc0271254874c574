// The carer's phone page: today's and the coming days' visits, then one visit: the elder's address,
// how to get in and what to know, check in and out with big buttons, the wellbeing checklist and notes.
// The server acts only for the carer the account names (docs/visits.md).
import { t, getLanguage } from "/static/i18n.js";
import { $, api, el, showError, hideError, startPage } from "/static/page.js";

const view = { data: null, openId: null, answers: {} };

// Times are the elder's site's local time (the plan's own clock), whatever zone the phone is set to.
function hm(iso, zone) {
  return new Intl.DateTimeFormat(getLanguage(), { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: zone })
    .format(new Date(iso));
}

function dayOf(iso, zone) {
  return new Intl.DateTimeFormat(getLanguage(), { weekday: "short", month: "numeric", day: "numeric", timeZone: zone })
    .format(new Date(iso));
}

const dayKey = (iso, zone) => new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date(iso));
const sameDay = (a, b, zone) => dayKey(a, zone) === dayKey(b, zone);
const isToday = (visit) => visit.status === "in_progress" || sameDay(visit.planned_at, view.data.now, visit.site_timezone);
const statusText = (visit) => t(`visits.status.${visit.status}`);
const visitById = (id) => view.data.visits.find((v) => v.id === id);

function visitButton(visit, withDay) {
  const zone = visit.site_timezone;
  const when = t("visits.carer.planned", { time: hm(visit.planned_at, zone), due: hm(visit.due_by, zone) });
  return el("li", { "data-status": visit.status },
    el("button", { type: "button", "data-visit-id": visit.id, "aria-label": `${visit.resident_card.name || visit.resident}: ${statusText(visit)}` },
      el("span", { class: "who", text: visit.resident_card.name || visit.resident }),
      el("span", { class: "when", text: withDay ? `${dayOf(visit.planned_at, zone)} · ${when}` : when }),
      el("span", { class: "state", text: statusText(visit) })));
}

function renderList() {
  const visits = view.data.visits;
  const today = visits.filter(isToday);
  const later = visits.filter((v) => !isToday(v) && new Date(v.planned_at) > new Date(view.data.now));
  $("#today").replaceChildren(...today.map((v) => visitButton(v, false)));
  $("#upcoming").replaceChildren(...later.map((v) => visitButton(v, true)));
  $("#today-none").hidden = today.length > 0;
  $("#upcoming-none").hidden = later.length > 0;
}

function cardRow(key, value) {
  if (value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) return [];
  return [el("dt", { text: t(key) }), el("dd", { text: Array.isArray(value) ? value.join("、") : value })];
}

function renderChecklist(visit) {
  const started = visit.status !== "planned" && visit.status !== "missed";
  $("#checklist-items").replaceChildren(...view.data.checklist.map((item) => el("div", { class: "check-item" },
    el("span", { class: "item-name", id: `item-${item}`, text: t(`visits.check.${item}`) }),
    el("div", { class: "answers", role: "group", "aria-labelledby": `item-${item}` },
      ...view.data.answers.map((answer) => el("button", {
        type: "button", "data-item": item, "data-answer": answer, disabled: !started,
        "aria-pressed": view.answers[item] === answer ? "true" : "false",
      }, t(`visits.answer.${answer}`)))))));
  $("#visit-notes").disabled = !started;
  $("#save").disabled = !started;
}

function renderVisit() {
  const visit = visitById(view.openId);
  if (!visit) return;
  const card = visit.resident_card;
  $("#visit-name").textContent = card.name || visit.resident;
  $("#visit-status").textContent = statusText(visit);
  $("#visit-status").dataset.status = visit.status;
  const zone = visit.site_timezone;
  const times = [t("visits.carer.planned", { time: hm(visit.planned_at, zone), due: hm(visit.due_by, zone) })];
  if (visit.checked_in_at) times.push(t("visits.carer.checkedIn", { time: hm(visit.checked_in_at, zone) }));
  if (visit.checked_out_at) times.push(t("visits.carer.checkedOut", { time: hm(visit.checked_out_at, zone) }));
  $("#visit-when").textContent = `${dayOf(visit.planned_at, zone)} · ${times.join(" · ")}`;
  const family = (card.contacts || []).map((c) => `${c.name}${c.relation ? ` (${c.relation})` : ""} ${c.phones.join(", ")}`);
  $("#visit-card").replaceChildren(
    ...cardRow("visits.carer.address", card.address),
    ...cardRow("visits.carer.access", [card.access_notes, visit.site_access_notes].filter(Boolean).join("\n")),
    ...cardRow("visits.carer.conditions", card.conditions),
    ...cardRow("visits.carer.risks", (card.risks || []).map((r) => t(`risk.${r}`))),
    ...cardRow("visits.carer.careNotes", card.notes),
    ...cardRow("visits.carer.contacts", family));
  $("#check-in").hidden = !(visit.status === "planned" || visit.status === "missed");
  $("#check-out").hidden = visit.status !== "in_progress";
  renderChecklist(visit);
}

function open(id) {
  const visit = visitById(id);
  view.openId = id;
  view.answers = { ...(visit?.checklist || {}) };
  $("#visit-notes").value = visit?.notes || "";
  $("#saved").hidden = true;
  $("#list").hidden = true;
  $("#visit").hidden = false;
  renderVisit();
  $("#visit-name").focus?.();
}

function close() {
  view.openId = null;
  $("#visit").hidden = true;
  $("#list").hidden = false;
  renderList();
}

async function load() {
  view.data = await api("/api/carer/visits");
  renderList();
  if (view.openId !== null) renderVisit();
}

function replaced(visit) {
  view.data.visits = view.data.visits.map((v) => (v.id === visit.id ? visit : v));
  renderVisit();
}

async function act(button, work) {
  button.disabled = true;
  try {
    hideError();
    replaced(await work());
    return true;
  } catch (err) {
    showError(err);
    return false;
  } finally {
    button.disabled = false;
  }
}

const record = () => ({ checklist: view.answers, notes: $("#visit-notes").value });

function bind() {
  for (const list of ["#today", "#upcoming"]) {
    $(list).addEventListener("click", (event) => {
      const button = event.target.closest("button[data-visit-id]");
      if (button) open(Number(button.dataset.visitId));
    });
  }
  $("#back").addEventListener("click", close);
  $("#check-in").addEventListener("click", (event) =>
    act(event.currentTarget, () => api(`/api/carer/visits/${view.openId}/check-in`, { method: "POST" })));
  $("#check-out").addEventListener("click", (event) =>
    act(event.currentTarget, () => api(`/api/carer/visits/${view.openId}/check-out`, { method: "POST", body: record() })));
  $("#save").addEventListener("click", async (event) => {
    const done = await act(event.currentTarget, () => api(`/api/carer/visits/${view.openId}/record`, { method: "PUT", body: record() }));
    $("#saved").hidden = !done;
  });
  $("#checklist-items").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-answer]");
    if (!button) return;
    view.answers[button.dataset.item] = button.dataset.answer;
    $("#saved").hidden = true;
    renderChecklist(visitById(view.openId));
  });
}

async function main() {
  await startPage({
    heading: "visits.carer.title",
    onLanguage: () => { if (view.data) { renderList(); renderVisit(); } },
  });
  bind();
  try {
    await load();
  } catch (err) {
    showError(err);
  }
  setInterval(() => load().catch(showError), 60_000);
}

main().catch(showError);
