// The incident screen of the operators' console, opened from the queue at #/incident/{id}: who, where,
// which device, what happened, who was called, what to do (the response script), notes, dispatch and
// resolve. It reads GET /api/incidents/{id}/detail; against a gateway without it, the incident, its
// escalation and its audit trail still make a (shorter) screen.
import { t, label, formatAge, formatTime, parseUtc } from "./i18n.js";
import { categoryOf, place, takenBy } from "./console-queue.js";

const $ = (selector) => document.querySelector(selector);
const ROUTE = /^#\/incident\/(\d+)(\/dispatch)?$/;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

const dash = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));
const listText = (items) => (Array.isArray(items) && items.length ? items.join(", ") : "—");
const phoneLink = (phone) => (phone ? el("a", { href: `tel:${phone}`, class: "phone" }, phone) : "—");

// A definition list of [catalogue key, value] pairs; values may be nodes.
function facts(pairs) {
  const dl = el("dl", { class: "facts" });
  for (const [key, value] of pairs) dl.append(el("dt", {}, t(key)), el("dd", {}, value ?? "—"));
  return dl;
}

export class IncidentScreen {
  constructor(consoleApi) {
    this.c = consoleApi;
    this.id = null;
    this.detail = null;
    this.seq = 0;
    $("#incident-back").addEventListener("click", () => { location.hash = ""; });
    $("#incident-actions").addEventListener("click", (event) => this.onAction(event));
    $("#note-form").addEventListener("submit", (event) => this.addNote(event));
    $("#dispatch-form").addEventListener("submit", (event) => this.dispatch(event));
  }

  isOpen() {
    return this.id !== null;
  }

  route() {
    const match = ROUTE.exec(location.hash);
    if (!match || !this.c.state.user) return this.close();
    this.open(Number(match[1]), Boolean(match[2]));
  }

  async open(id, toDispatch = false) {
    const seq = ++this.seq;
    const fresh = this.id !== id;
    this.id = id;
    $("#queue-view").hidden = true;
    $("#incident-view").hidden = false;
    if (fresh) {
      this.detail = null;
      $("#incident-view").dataset.incidentId = id;
      $("#incident-view").dataset.loaded = "false";
      this.paint();
    }
    try {
      const detail = await this.load(id);
      if (seq !== this.seq) return;
      this.detail = detail;
      this.paint();
      $("#incident-view").dataset.loaded = "true";
      if (fresh) $("#incident-heading").focus();
      if (toDispatch) $("#dispatch-who").focus();
    } catch (err) {
      if (seq === this.seq) this.c.showError(err);
    }
  }

  async load(id) {
    const api = this.c.api;
    try {
      return await api(`/api/incidents/${id}/detail`);
    } catch (err) {
      if (err.status !== 404 && err.status !== 405) throw err;
    }
    // A gateway without the detail endpoint: what the older API has.
    const [incident, escalation, audit] = await Promise.all([
      api(`/api/incidents/${id}`), api(`/api/incidents/${id}/escalation`), api(`/api/incidents/${id}/audit`),
    ]);
    const timeline = (audit || []).map((entry) => ({ at: entry.at, kind: entry.action, by: entry.actor }));
    return { incident, escalation, timeline, partial: true };
  }

  close() {
    if (this.id === null) return;
    this.id = null;
    this.detail = null;
    this.seq += 1;
    $("#incident-view").hidden = true;
    $("#queue-view").hidden = false;
    if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  }

  // The queue's frames keep an open screen current.
  incidentChanged(inc) {
    if (!inc || inc.id !== this.id || !this.detail) return;
    this.detail.incident = inc;
    this.paintHeader();
    if (inc.status === "resolved") this.paint();
    else this.refreshSoon();
  }

  escalationChanged(id, notifications) {
    if (Number(id) !== this.id || !this.detail) return;
    this.detail.escalation = notifications;
    this.paintEscalation();
  }

  // Notes, dispatches and the timeline are not in the frames: read them again, once per burst.
  refreshSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => { if (this.id !== null) this.open(this.id); }, 300);
  }

  relabel() {
    if (this.id !== null) this.paint();
  }

  incident() {
    return this.detail?.incident || this.c.state.incidents.get(this.id) || null;
  }

  paint() {
    this.paintHeader();
    const d = this.detail || {};
    $("#incident-partial").hidden = !d.partial;
    this.paintResident(d.resident);
    this.paintPlace(d.place, this.incident());
    this.paintDevice(d.device, this.incident());
    this.paintScript(d.script);
    this.paintContacts(d.contacts);
    this.paintTimeline(d.timeline);
    this.paintEscalation();
    this.paintNotes(d.notes);
    this.paintDispatches(d.dispatches);
  }

  paintHeader() {
    const inc = this.incident();
    const heading = $("#incident-heading");
    if (!inc) {
      heading.textContent = t("app.loading");
      $("#incident-summary").replaceChildren();
      $("#incident-actions").replaceChildren();
      return;
    }
    heading.textContent = `${label("rule", inc.rule)} — ${inc.resident_name || inc.resident || place(inc)}`;
    const holder = takenBy(inc);
    const mine = holder && holder === this.c.state.user?.username;
    const summary = [
      el("span", { class: `badge sev-${inc.severity}` }, label("severity", inc.severity)),
      el("span", { class: "category" }, label("console.category", categoryOf(inc))),
      el("span", { class: `status status-${inc.status}`, id: "incident-status", "data-status": inc.status },
        label("status", inc.status)),
      el("span", { class: "incident-age" }, this.openedText(inc)),
      holder ? el("span", { class: "taken", id: "incident-taken" },
        mine ? t("console.takenByMe") : t("console.takenByUser", { user: holder })) : null,
      inc.dispatched ? el("span", { class: "dispatched" }, t("console.dispatched")) : null,
      inc.outcome ? el("span", {}, `${t("resolve.outcome")}: ${label("outcome", inc.outcome)}`) : null,
    ];
    $("#incident-summary").replaceChildren(...summary.filter(Boolean));
    const active = inc.status !== "resolved";
    const button = (action, key, primary) =>
      el("button", { type: "button", "data-action": action, class: primary ? "primary" : null }, t(key));
    $("#incident-actions").replaceChildren(...[
      active && (!holder ? button("take", "console.take") : mine ? button("release", "console.release")
        : button("take", "console.takeOver")),
      inc.status === "open" ? button("ack", "action.ack", true) : null,
      active ? button("resolve", "action.resolve") : null,
    ].filter(Boolean));
  }

  openedText(inc) {
    return t("console.incident.opened", {
      time: formatTime(inc.opened_at, { full: true }),
      age: formatAge((Date.now() - parseUtc(inc.opened_at)) / 1000),
    });
  }

  // The console's one ticker calls this every second.
  tick() {
    const inc = this.id === null ? null : this.incident();
    const node = inc && document.querySelector("#incident-summary .incident-age");
    if (node) node.textContent = this.openedText(inc);
  }

  onAction(event) {
    const target = event.target.closest("button[data-action]");
    if (!target || this.id === null) return;
    const { action } = target.dataset;
    if (action === "ack") this.c.acknowledge(this.id, target);
    else if (action === "take") this.c.take(this.id);
    else if (action === "release") this.c.release(this.id);
    else if (action === "resolve") this.c.openResolve(this.id);
  }

  paintResident(resident) {
    const box = $("#incident-resident");
    if (!resident) return box.replaceChildren(el("p", { class: "muted" }, t("console.incident.noResident")));
    const photo = resident.photo_url
      ? el("img", { src: resident.photo_url, alt: t("console.incident.photoOf", { name: resident.name }), class: "photo" })
      : null;
    // A photo that cannot be loaded leaves no broken-image box behind, only its absence.
    photo?.addEventListener("error", () => photo.remove(), { once: true });
    const age = resident.age ?? null;
    box.replaceChildren(...[
      photo,
      el("p", { class: "resident-name", id: "resident-name" }, dash(resident.name)),
      facts([
        ["console.incident.age", age === null ? "—" : t("console.incident.years", { n: age })],
        ["console.incident.languages", listText((resident.languages || []).map((code) => label("console.lang", code)))],
        ["console.incident.conditions", listText(resident.conditions)],
        ["console.incident.risks", el("span", { class: "risks" }, listText((resident.risks || []).map((r) => label("risk", r))))],
        ["console.incident.careNotes", dash(resident.care_notes)],
      ]),
    ].filter(Boolean));
  }

  paintPlace(where, inc) {
    const p = where || {};
    $("#incident-place").replaceChildren(facts([
      ["console.incident.site", dash(p.site_name || inc?.site_name || inc?.site)],
      ["console.incident.wing", dash(p.wing_name || p.wing)],
      ["console.incident.room", dash(p.room_name || p.room || inc?.room)],
      ["console.incident.address", dash(p.address)],
      ["console.incident.access", el("strong", {}, dash(p.access_notes))],
    ]));
  }

  paintDevice(device, inc) {
    const d = device || {};
    const health = d.health || d; // the gateway puts online / last_seen / battery on the device itself
    const online = health.online === undefined || health.online === null ? "—"
      : t(health.online ? "console.incident.online" : "console.incident.offline");
    const readings = (d.readings || d.recent_readings || []).slice(0, 10); // newest first
    const table = readings.length ? el("table", { class: "readings" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, t("console.incident.when")),
        el("th", { scope: "col" }, t("console.incident.reading")), el("th", { scope: "col" }, t("console.incident.value")))),
      el("tbody", {}, ...readings.map((r) => el("tr", {},
        el("td", {}, formatTime(r.time || r.at)),
        el("td", {}, label("event", r.field || r.measurement || r.kind || "—")),
        el("td", {}, dash(r.value)))))) : el("p", { class: "muted" }, t("console.incident.noReadings"));
    $("#incident-device").replaceChildren(facts([
      ["console.incident.deviceId", dash(d.name && d.name !== d.id ? `${d.name} (${d.id})` : d.id || inc?.device_id)],
      ["console.incident.deviceType", dash(d.type ? label("device_type", d.type) : null)],
      ["console.incident.deviceState", online],
      ["console.incident.lastSeen", health.last_seen ? formatTime(health.last_seen) : "—"],
      ["console.incident.battery", health.battery === null || health.battery === undefined ? "—" : `${health.battery} %`],
    ]), table);
  }

  paintScript(script) {
    const box = $("#incident-script");
    const steps = scriptSteps(script);
    box.replaceChildren(steps.length
      ? el("ol", { class: "script-steps", id: "script-steps" }, ...steps.map((step) => el("li", {}, step)))
      : el("p", { class: "muted" }, t("console.incident.noScript")));
  }

  paintContacts(contacts) {
    const c = contacts || {};
    const responders = c.responders || [];
    const family = c.family || [];
    const rows = (items, cells) => items.map((item) => el("tr", {}, ...cells(item).map((cell) => el("td", {}, cell))));
    $("#incident-contacts").replaceChildren(
      el("h4", {}, t("console.incident.responders")),
      responders.length ? el("table", { class: "contacts", id: "responder-list" }, el("tbody", {}, ...rows(responders, (r) => [
        r.name, dash((r.roles || [r.role]).filter(Boolean).map((role) => label("console.role", role)).join(", ")),
        phoneLink(r.phone),
        r.on_duty ? el("span", { class: "on-duty" }, `● ${t("console.incident.onDuty")}`) : t("console.incident.offDuty"),
      ]))) : el("p", { class: "muted" }, "—"),
      el("h4", {}, t("console.incident.family")),
      family.length ? el("table", { class: "contacts" }, el("tbody", {}, ...rows(family, (f) => [
        f.name, dash(f.relation), phoneLink(f.phone),
      ]))) : el("p", { class: "muted" }, "—"),
    );
    const choose = $("#dispatch-responder");
    const chosen = choose.value;
    choose.replaceChildren(el("option", { value: "" }, t("console.dispatch.someoneElse")),
      ...responders.map((r) => el("option", { value: r.id }, `${r.name}${r.on_duty ? ` (${t("console.incident.onDuty")})` : ""}`)));
    choose.value = chosen;
  }

  paintTimeline(timeline) {
    const items = [...(timeline || [])].sort((a, b) => parseUtc(a.at) - parseUtc(b.at));
    $("#incident-timeline").replaceChildren(items.length ? el("ol", { class: "timeline", id: "timeline" },
      ...items.map((item) => el("li", { "data-kind": item.kind },
        el("time", { datetime: item.at }, formatTime(item.at)), " ",
        el("span", { class: "kind" }, timelineWhat(item)),
        item.actor ? el("span", { class: "muted" }, ` · ${actorName(item.actor)}`) : null,
        timelineMore(item))))
      : el("p", { class: "muted" }, "—"));
  }

  paintEscalation() {
    const sent = this.detail?.escalation || [];
    $("#incident-escalation").replaceChildren(sent.length ? el("table", { class: "escalation-log", id: "escalation-log" },
      el("thead", {}, el("tr", {}, ...["console.esc.tier", "console.esc.who", "console.esc.channel", "console.esc.state", "console.incident.when"]
        .map((key) => el("th", { scope: "col" }, t(key))))),
      el("tbody", {}, ...sent.map((n) => el("tr", { "data-status": n.status },
        el("td", {}, dash(n.tier)), el("td", {}, dash(n.responder_name || n.responder)), el("td", {}, label("channel", n.channel)),
        el("td", {}, label("delivery", n.status)),
        el("td", {}, formatTime(n.updated_at || n.sent_at || n.created_at || n.at))))))
      : el("p", { class: "muted" }, t("console.esc.none")));
  }

  paintNotes(notes) {
    const items = notes || [];
    $("#note-list").replaceChildren(...items.map((n) => el("li", { "data-note-id": n.id },
      el("span", { class: "muted" }, `${formatTime(n.at)} · ${n.author}`), el("br"), n.text)));
  }

  paintDispatches(dispatches) {
    const items = dispatches || [];
    $("#dispatch-list").replaceChildren(...items.map((d) => el("li", { "data-dispatch-id": d.id },
      el("span", { class: "muted" }, `${formatTime(d.at)} · ${d.by || d.author || ""}`), el("br"),
      t("console.dispatch.sent", { who: d.who || d.responder_name || d.responder || "—" }), d.note ? ` — ${d.note}` : "")));
  }

  async addNote(event) {
    event.preventDefault();
    const text = $("#note-text").value.trim();
    if (!text || this.id === null) return;
    try {
      const note = await this.c.api(`/api/incidents/${this.id}/notes`, { method: "POST", body: { text } });
      $("#note-text").value = "";
      if (this.detail) this.paintNotes((this.detail.notes = [...(this.detail.notes || []), note]));
    } catch (err) {
      this.c.showError(err);
    }
  }

  async dispatch(event) {
    event.preventDefault();
    const responder = $("#dispatch-responder").value || null;
    const who = $("#dispatch-who").value.trim();
    const note = $("#dispatch-note").value.trim();
    if (!responder && !who) {
      $("#dispatch-error").textContent = t("console.dispatch.needWho");
      $("#dispatch-error").hidden = false;
      return;
    }
    $("#dispatch-error").hidden = true;
    try {
      const sent = await this.c.api(`/api/incidents/${this.id}/dispatch`, {
        method: "POST", body: { responder: responder === null ? null : responder, who, note },
      });
      $("#dispatch-who").value = "";
      $("#dispatch-note").value = "";
      if (this.detail) this.paintDispatches((this.detail.dispatches = [...(this.detail.dispatches || []), sent]));
      this.refreshSoon();
    } catch (err) {
      $("#dispatch-error").textContent = this.c.errorText(err);
      $("#dispatch-error").hidden = false;
    }
  }
}

// "user:li" and "device:x" as people read them; the gateway's own actors keep their name.
function actorName(actor) {
  return String(actor).replace(/^(user|device):/, "");
}

// One line of the timeline: a device event, an audit entry, a notification, a note, a dispatch.
function timelineWhat(item) {
  if (item.kind === "event") return t("console.timeline.event", { what: label("event", item.code) });
  if (item.kind === "notification") {
    const d = item.details || {};
    return t("console.timeline.notification", { channel: label("channel", d.channel), state: label("delivery", item.code) });
  }
  if (item.kind === "note") return t("console.timeline.note");
  if (item.kind === "dispatch") return t("console.timeline.dispatch");
  return label("console.timeline", item.code);
}

function timelineMore(item) {
  const d = item.details || {};
  if (item.kind === "note") return el("span", {}, ` — ${d.text}`);
  if (item.kind === "dispatch") {
    return el("span", {}, ` — ${t("console.dispatch.sent", { who: d.responder_name || d.who || d.responder || "—" })}${d.note ? ` (${d.note})` : ""}`);
  }
  if (item.kind === "audit" && item.code === "incident.resolved" && d.outcome) {
    return el("span", {}, ` — ${label("outcome", d.outcome)}`);
  }
  return null;
}

// The script's steps in the page's language: a list, or one list per language.
function scriptSteps(script) {
  if (!script) return [];
  const steps = script.steps;
  if (Array.isArray(steps)) return steps.map((s) => (typeof s === "string" ? s : s.text || s.en || ""));
  if (steps && typeof steps === "object") {
    const lang = document.documentElement.lang;
    return steps[lang] || steps.en || Object.values(steps)[0] || [];
  }
  return [];
}
