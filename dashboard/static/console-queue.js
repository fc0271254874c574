// The alarm queue's table, drawn incrementally: each row is rebuilt only when what it shows changed, rows
// are moved (not recreated) when the order changes, and one ticker updates every age. With 500 open
// alarms a WebSocket frame then costs one row, not the whole table (benchmarks/console_render.py).
import { t, label, formatAge, formatTime, parseUtc } from "./i18n.js";

// Life-safety first, then wandering and wellbeing, technical last. The gateway sends `category`; older
// gateways do not, so the rule decides.
export const CATEGORY_RANK = { life_safety: 0, wandering: 1, wellbeing: 2, technical: 3 };
const RULE_CATEGORY = {
  sos: "life_safety", fall: "life_safety", smoke: "life_safety",
  door_night: "wandering", door_left_open: "wandering", bed_exit: "wellbeing",
  inactivity: "wellbeing", missed_check_in: "wellbeing", vitals: "wellbeing", activity_baseline: "wellbeing",
  reassurance_help: "life_safety", reassurance_no_answer: "wellbeing",
  device_health: "technical", channel_failing: "technical", console_unstaffed: "technical",
  visit_missed: "wellbeing",
  falling_from_bed: "life_safety", scalds: "life_safety", locked_zone_exit: "wandering",
  repositioning_due: "wellbeing", fever_cluster: "wellbeing",
};
const CATEGORY_ICON = { life_safety: "▲", wandering: "◆", wellbeing: "●", technical: "■" };
const STATUS_ICON = { open: "!", acknowledged: "✓" };
const STATUS_RANK = { open: 0, acknowledged: 1 };

export function categoryOf(inc) {
  return inc.category || RULE_CATEGORY[inc.rule] || "technical";
}

// Parsing a timestamp in every comparison made sorting 500 alarms cost milliseconds: parse once.
const opened = new WeakMap();
function openedMs(inc) {
  let ms = opened.get(inc);
  if (ms === undefined) opened.set(inc, (ms = parseUtc(inc.opened_at)));
  return ms;
}

// Within a category an alarm nobody has acknowledged comes before those being handled, then the oldest.
export function compareIncidents(a, b) {
  return (CATEGORY_RANK[categoryOf(a)] ?? 9) - (CATEGORY_RANK[categoryOf(b)] ?? 9)
    || (STATUS_RANK[a.status] ?? 9) - (STATUS_RANK[b.status] ?? 9)
    || openedMs(a) - openedMs(b)
    || a.id - b.id;
}

export function place(inc) {
  const site = inc.site_name || inc.site || "";
  return inc.room ? `${site} · ${inc.room}` : site || "—";
}

export function takenBy(inc) {
  return inc.taken_by || null;
}

// An alarm waits for a human while it is open and nobody has taken it.
export const waiting = (inc) => inc.status === "open" && !takenBy(inc);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

function button(action, text, primary = false) {
  return el("button", { type: "button", "data-action": action, class: primary ? "primary" : null }, text);
}

export class QueueTable {
  // `context` answers what a row needs beyond the incident: me (username), escalation(id), ageSeconds(iso).
  constructor(tbody, context) {
    this.tbody = tbody;
    this.context = context;
    this.rows = new Map(); // id -> {tr, age, signature}
    this.language = null;
    // Only the ages on screen tick; a row scrolled into view is brought up to date as it appears.
    this.visible = new Set();
    this.observer = typeof IntersectionObserver === "function"
      ? new IntersectionObserver((entries) => this.onVisibility(entries)) : null;
  }

  onVisibility(entries) {
    for (const entry of entries) {
      const row = this.rows.get(Number(entry.target.dataset.incidentId));
      if (!row) continue;
      if (entry.isIntersecting) {
        this.visible.add(row);
        this.tickRow(row);
      } else {
        this.visible.delete(row);
      }
    }
  }

  // Draw `list` (already sorted); returns the number of rows rebuilt.
  render(list, language) {
    const relabel = language !== this.language;
    this.language = language;
    let rebuilt = 0;
    const keep = new Set();
    let cursor = this.tbody.firstChild;
    for (const inc of list) {
      keep.add(inc.id);
      const signature = this.signature(inc);
      let row = this.rows.get(inc.id);
      if (!row) {
        row = { tr: el("tr", { "data-incident-id": inc.id, tabindex: "-1", role: "row" }), age: null, signature: null };
        this.rows.set(inc.id, row);
        this.observer?.observe(row.tr);
      }
      if (relabel || row.signature !== signature) {
        this.fill(row.tr, inc);
        row.age = row.tr.querySelector(".age");
        row.signature = signature;
        rebuilt += 1;
      }
      if (row.tr === cursor) cursor = cursor.nextSibling;
      else this.tbody.insertBefore(row.tr, cursor);
    }
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        this.observer?.unobserve(row.tr);
        this.visible.delete(row);
        row.tr.remove();
        this.rows.delete(id);
      }
    }
    return rebuilt;
  }

  row(id) {
    return this.rows.get(id)?.tr || null;
  }

  signature(inc) {
    const sent = this.context.escalation(inc.id);
    const last = sent[sent.length - 1];
    return [inc.status, inc.trigger_count, inc.acknowledged_by, takenBy(inc), inc.dispatched,
      (inc.faults || []).length, inc.resident_name, inc.site_name, inc.room,
      sent.length, last?.status, this.context.me()].join("|");
  }

  // Ages change every second; one pass over the age cells, nothing else is touched.
  tick() {
    for (const row of this.observer ? this.visible : this.rows.values()) this.tickRow(row);
  }

  tickRow({ age }) {
    const text = formatAge(this.context.ageSeconds(age.dataset.opened));
    if (age.textContent !== text) age.textContent = text;
  }

  fill(tr, inc) {
    const category = categoryOf(inc);
    tr.dataset.status = inc.status;
    tr.dataset.severity = inc.severity;
    tr.dataset.category = category;
    tr.dataset.taken = takenBy(inc) ? (takenBy(inc) === this.context.me() ? "me" : "other") : "";
    tr.classList.toggle("alerting", waiting(inc) && category === "life_safety");
    tr.replaceChildren(
      el("td", {}, el("span", { class: `badge sev-${inc.severity}` }, label("severity", inc.severity))),
      this.ruleCell(inc, category),
      el("td", {}, inc.resident_name || inc.resident || "—"),
      el("td", {}, place(inc)),
      this.ageCell(inc),
      el("td", { class: "triggers" }, inc.trigger_count > 1
        ? el("span", { title: t("triggers.title", { n: inc.trigger_count }) }, `×${inc.trigger_count}`) : ""),
      this.statusCell(inc),
      this.actionsCell(inc),
    );
    for (const cell of tr.children) cell.setAttribute("role", "cell"); // the rows are grids (app.css)
  }

  ruleCell(inc, category) {
    const td = el("td", { title: inc.device_id ? t("device", { id: inc.device_id }) : null },
      el("span", { class: `category cat-${category}` },
        el("span", { class: "icon", "aria-hidden": "true" }, CATEGORY_ICON[category] || "●"),
        el("span", { class: "visually-hidden" }, label("console.category", category)), " "),
      el("a", { href: `#/incident/${inc.id}`, class: "rule-link", "data-action": "open" }, label("rule", inc.rule)));
    const faults = inc.faults || [];
    if (faults.length) {
      // The fault texts are the gateway's technical wording (as in dead letters) for the technician.
      td.append(el("br"), el("small", { class: "faults", title: t("faults.title", { list: faults.join("\n") }) },
        t("faults", { n: faults.length })));
    }
    return td;
  }

  ageCell(inc) {
    const age = el("span", { class: "age", "data-opened": inc.opened_at },
      formatAge(this.context.ageSeconds(inc.opened_at)));
    const when = el("time", { datetime: inc.opened_at, title: formatTime(inc.opened_at, { full: true }) },
      t("openedAt", { time: formatTime(inc.opened_at) }));
    return el("td", {}, age, el("br"), when);
  }

  statusCell(inc) {
    const td = el("td", {}, el("span", { class: `status status-${inc.status}` },
      el("span", { class: "icon", "aria-hidden": "true" }, STATUS_ICON[inc.status] || ""), " ",
      label("status", inc.status)));
    if (inc.status === "acknowledged" && inc.acknowledged_by) {
      td.append(el("br"), el("small", {}, t("ackBy", { user: inc.acknowledged_by, time: formatTime(inc.acknowledged_at) })));
    }
    const holder = takenBy(inc);
    if (holder) {
      const mine = holder === this.context.me();
      td.append(el("br"), el("small", { class: `taken ${mine ? "taken-me" : "taken-other"}` },
        el("span", { class: "icon", "aria-hidden": "true" }, mine ? "★" : "⚑"), " ",
        mine ? t("console.takenByMe") : t("console.takenByUser", { user: holder })));
    }
    if (inc.dispatched) td.append(el("br"), el("small", { class: "dispatched" }, t("console.dispatched")));
    const progress = this.escalationLine(inc);
    if (progress) td.append(el("br"), progress);
    return td;
  }

  escalationLine(inc) {
    const sent = this.context.escalation(inc.id);
    if (!sent.length) return null;
    const latest = sent.slice(-3).map((n) =>
      `${n.responder_name || n.responder} · ${label("channel", n.channel)} · ${label("delivery", n.status)}`);
    return el("small", { class: "escalation", "data-notifications": sent.length },
      t("escalation.progress", { tier: sent[sent.length - 1].tier, list: latest.join("; ") }));
  }

  actionsCell(inc) {
    const holder = takenBy(inc);
    const mine = holder === this.context.me();
    const take = !holder ? button("take", t("console.take"))
      : mine ? button("release", t("console.release")) : button("take", t("console.takeOver"));
    const ack = inc.status === "open" ? button("ack", t("action.ack"), true) : null;
    return el("td", { class: "actions" }, take, ack, button("resolve", t("action.resolve")));
  }
}
