// Careline administration page: the directory's lists and forms, imports and the pairing of new Zigbee
// devices. Everything goes through the directory's REST API, which validates with the same models as an
// import and enforces roles and sites; this page only shows what the server decides.
import { t, label, getLanguage, setLanguage, initialLanguage, rememberLanguage, translatePage, formatTime } from "./i18n.js";
import { $, el } from "./page.js";
import { refreshLogins, wireLogins } from "./admin-logins.js";

const PAGE_SIZE = 50;
const SEARCH_DELAY_MS = 200;
const DEVICE_TYPES = ["sos_button", "fall_sensor", "door_sensor", "smoke_detector", "presence_sensor",
  "motion_sensor", "vitals_monitor", "bed_sensor", "other"];
const RISKS = ["falls", "wandering", "falling_from_bed", "pressure_sores", "choking", "scalds"];
const LANGS = ["zh-CN", "en"];

const state = {
  user: null, csrf: null, tab: "residents", offset: 0, total: 0, query: "", filters: {},
  sites: [], editing: null, selected: new Set(), importFile: null, searchTimer: null,
};

// -- HTTP --------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, { method = "GET", body, form } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", "X-Careline-Language": getLanguage() } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = state.csrf;
  if (form) init.body = form;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init).catch(() => { throw new ApiError(0, null); });
  const data = await res.json().catch(() => null);
  if (res.status === 401) window.location.assign("/");
  if (!res.ok) throw new ApiError(res.status, data?.detail ?? null);
  return data;
}

function errorText(err) {
  if (!(err instanceof ApiError)) return String(err);
  if (err.status === 0) return t("error.network");
  if (typeof err.detail === "string") return t("error.detail", { status: err.status, detail: err.detail });
  if (err.detail?.problems) return t("admin.refused.problems", { count: err.detail.problems.length });
  return t("error.http", { status: err.status });
}

function showError(err) {
  $("#error-text").textContent = errorText(err);
  $("#error-banner").hidden = false;
}

function notice(text) {
  Object.assign($("#notice"), { textContent: text, hidden: !text });
}

// -- what each kind shows ----------------------------------------------------------------------------

const canEdit = (kind) => state.user?.role === "admin" || (state.user?.role === "manager" && kind === "residents");
const siteOptions = () => state.sites.map((s) => [s.id, s.name]);
const roomsOf = (siteId) => (state.sites.find((s) => s.id === siteId)?.rooms || []).map((r) => [r.id, r.name || r.id]);
const coded = (prefix, codes) => codes.map((c) => [c, label(prefix, c)]);

// Columns: [field, catalogue key, how to show it]. Fields: the form, in order.
const KINDS = {
  residents: {
    singular: "resident", ending: "discharge", endKey: "admin.discharge", defaults: { languages: ["zh-CN"] },
    columns: [["id", "field.id"], ["name", "field.name"], ["site", "field.site"], ["room", "field.room"],
      ["status", "field.status", (v) => label("resident_status", v)]],
    filters: [["site", "field.site", siteOptions], ["status", "field.status", () => coded("resident_status", ["active", "discharged"])]],
    fields: [
      { name: "id", i18n: "field.id", required: true, fixed: true },
      { name: "name", i18n: "field.name", required: true },
      { name: "site", i18n: "field.site", type: "select", options: siteOptions, required: true },
      { name: "room", i18n: "field.room", type: "select", options: (v) => roomsOf(v.site), optional: true },
      { name: "birth_year", i18n: "field.birth_year", type: "number" },
      { name: "languages", i18n: "field.languages", type: "checks", options: () => LANGS.map((l) => [l, t(`language_name.${l}`)]) },
      { name: "risks", i18n: "field.risks", type: "checks", options: () => coded("risk", RISKS) },
      { name: "conditions", i18n: "field.conditions", type: "list" },
      { name: "address", i18n: "field.address", type: "textarea" },
      { name: "access_notes", i18n: "field.access_notes", type: "textarea" },
      { name: "notes", i18n: "field.notes", type: "textarea" },
      { name: "check_in_consent", i18n: "field.check_in_consent", type: "checkbox" },
      { name: "contacts", i18n: "field.contacts", type: "contacts" },
      { name: "key_safe_code", i18n: "field.key_safe_code", type: "secret" },
    ],
  },
  devices: {
    singular: "device", ending: "retire", endKey: "admin.retire", defaults: { state: "active" },
    columns: [["id", "field.id"], ["type", "field.type", (v) => label("device_type", v)], ["site", "field.site"],
      ["room", "field.room"], ["resident", "field.resident"], ["state", "field.state", (v) => label("device_state", v)],
      ["last_seen", "admin.lastSeen"], ["battery", "admin.battery"], ["last_test", "admin.lastTest"]],
    filters: [["site", "field.site", siteOptions], ["type", "field.type", () => coded("device_type", DEVICE_TYPES)],
      ["state", "field.state", () => coded("device_state", ["active", "spare", "retired"])]],
    bulk: true,
    fields: [
      { name: "id", i18n: "field.id", required: true, fixed: true },
      { name: "type", i18n: "field.type", type: "select", options: () => coded("device_type", DEVICE_TYPES), required: true },
      { name: "profile", i18n: "field.profile", type: "select", options: () => [["careline", "Careline"], ["zigbee2mqtt", "Zigbee2MQTT"]] },
      { name: "site", i18n: "field.site", type: "select", options: siteOptions, required: true },
      { name: "room", i18n: "field.room", type: "select", options: (v) => roomsOf(v.site), optional: true },
      { name: "resident", i18n: "field.resident", optional: true },
      { name: "friendly_name", i18n: "field.friendly_name" },
      { name: "hub", i18n: "field.hub", optional: true },
      { name: "vendor", i18n: "field.vendor" },
      { name: "model", i18n: "field.model" },
      { name: "state", i18n: "field.state", type: "select", options: () => coded("device_state", ["active", "spare", "retired"]) },
    ],
  },
  sites: {
    singular: "site", ending: "withdraw", endKey: "admin.withdraw",
    columns: [["id", "field.id"], ["name", "field.name"], ["kind", "field.kind", (v) => label("site_kind", v)],
      ["timezone", "field.timezone"], ["rooms", "field.rooms", (v) => String((v || []).length)]],
    filters: [],
    fields: [
      { name: "id", i18n: "field.id", required: true, fixed: true },
      { name: "name", i18n: "field.name", required: true },
      { name: "kind", i18n: "field.kind", type: "select", options: () => coded("site_kind", ["care_home", "home", "district"]) },
      { name: "timezone", i18n: "field.timezone" },
      { name: "address", i18n: "field.address", type: "textarea" },
      { name: "rooms", i18n: "field.rooms", type: "rooms" },
    ],
  },
  responders: {
    singular: "responder", ending: "withdraw", endKey: "admin.withdraw", defaults: { language: "zh-CN" },
    columns: [["id", "field.id"], ["name", "field.name"], ["phone", "field.phone"], ["roles", "field.roles", (v) => (v || []).join(", ")],
      ["sites", "field.sites", (v) => (v || []).join(", ")], ["shifts", "field.shifts", (v) => (v || []).map(shiftText).join("; ")]],
    filters: [],
    bulk: true,
    fields: [
      { name: "id", i18n: "field.id", required: true, fixed: true },
      { name: "name", i18n: "field.name", required: true },
      { name: "phone", i18n: "field.phone", placeholder: "+8613800000000" },
      { name: "email", i18n: "field.email" },
      { name: "language", i18n: "field.language", type: "select", options: () => LANGS.map((l) => [l, t(`language_name.${l}`)]) },
      { name: "roles", i18n: "field.roles", type: "list" },
      { name: "sites", i18n: "field.sites", type: "checks", options: siteOptions },
      { name: "shifts", i18n: "field.shifts", type: "shifts" },
    ],
  },
  users: {
    singular: "user", ending: null, defaults: { role: "operator", language: "zh-CN" },
    columns: [["username", "field.username"], ["role", "field.role", (v) => label("role", v)],
      ["language", "field.language", (v) => t(`language_name.${v}`)], ["sites", "field.sites", (v) => (v || []).join(", ")],
      ["disabled", "field.disabled", (v) => (v ? t("admin.yes") : t("admin.no"))]],
    filters: [],
    fields: [
      { name: "username", i18n: "field.username", required: true, fixed: true },
      { name: "password", i18n: "field.password", type: "password" },
      { name: "role", i18n: "field.role", type: "select", options: () => coded("role", ["operator", "manager", "admin", "carer"]) },
      { name: "language", i18n: "field.language", type: "select", options: () => LANGS.map((l) => [l, t(`language_name.${l}`)]) },
      { name: "sites", i18n: "field.sites", type: "checks", options: siteOptions },
      { name: "disabled", i18n: "field.disabled", type: "checkbox" },
    ],
  },
};

function shiftText(shift) {
  const days = (shift.days || []).length === 7 ? t("admin.everyDay") : (shift.days || []).join(",");
  return `${days} ${shift.start}–${shift.end}${shift.wing ? ` (${shift.wing})` : ""}`;
}

// -- lists -------------------------------------------------------------------------------------------

async function loadSites() {
  const page = await api("/api/directory/sites?limit=500");
  state.sites = page.items;
}

async function fetchPage(kind) {
  if (kind === "users") {
    const users = await api("/api/directory/users");
    const q = state.query.toLowerCase();
    const found = users.filter((u) => !q || u.username.toLowerCase().includes(q));
    return { total: found.length, items: found.slice(state.offset, state.offset + PAGE_SIZE) };
  }
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE_SIZE });
  if (state.query) params.set("q", state.query);
  for (const [name, value] of Object.entries(state.filters)) if (value) params.set(name, value);
  const page = await api(`/api/directory/${kind}?${params}`);
  if (kind === "devices") await addDeviceHealth(page.items);
  return page;
}

// Last seen and battery come from the gateway's device health, the last test from the incident store.
async function addDeviceHealth(items) {
  const [health, tests] = await Promise.all([api("/api/devices"), api("/api/device-tests")]);
  const seen = new Map(health.map((h) => [h.device_id, h]));
  const tested = new Map(tests.map((d) => [d.device_id, d]));
  for (const item of items) {
    item.last_seen = seen.has(item.id) ? formatTime(seen.get(item.id).last_seen) : "—";
    const battery = seen.get(item.id)?.battery;
    item.battery = battery === null || battery === undefined ? "—" : `${battery}%`;
    item.last_test = tested.has(item.id) ? formatTime(tested.get(item.id).last_test_at) : t("admin.neverTested");
  }
}

function renderFilters(spec) {
  const box = $("#filters");
  box.replaceChildren();
  for (const [name, key, options] of spec.filters) {
    const select = el("select", { "data-filter": name, "aria-label": t(key) }, el("option", { value: "", text: `${t(key)}: ${t("admin.all")}` }));
    for (const [value, text] of options()) select.append(el("option", { value, text }));
    select.value = state.filters[name] || "";
    select.addEventListener("change", () => { state.filters[name] = select.value; state.offset = 0; refreshList(); });
    box.append(select);
  }
}

async function refreshList() {
  const kind = state.tab;
  const spec = KINDS[kind];
  try {
    const page = await fetchPage(kind);
    if (kind !== state.tab) return;
    state.total = page.total;
    renderTable(spec, page.items);
  } catch (err) {
    showError(err);
  }
}

function renderTable(spec, items) {
  const idField = spec.columns[0][0];
  const head = el("tr");
  if (spec.bulk && canEdit(state.tab)) head.append(el("th"));
  for (const [, key] of spec.columns) head.append(el("th", { scope: "col", text: t(key) }));
  $("#entries thead").replaceChildren(head);
  const rows = items.map((item) => {
    const id = item[idField];
    const tr = el("tr", { "data-entry-id": id, tabindex: "0" });
    if (spec.bulk && canEdit(state.tab)) {
      const box = el("input", { type: "checkbox", "aria-label": t("admin.select") });
      box.checked = state.selected.has(id);
      box.addEventListener("click", (e) => { e.stopPropagation(); toggleSelected(id, box.checked); });
      tr.append(el("td", {}, box));
    }
    for (const [field, , show] of spec.columns) {
      const value = item[field];
      tr.append(el("td", { text: show ? show(value) : (value ?? "—") }));
    }
    tr.addEventListener("click", () => openEditor(id));
    return tr;
  });
  $("#entries tbody").replaceChildren(...rows);
  const last = Math.min(state.offset + items.length, state.total);
  $("#page-info").textContent = t("admin.pageInfo", { first: state.total ? state.offset + 1 : 0, last, total: state.total });
  $("#prev-page").disabled = state.offset === 0;
  $("#next-page").disabled = state.offset + PAGE_SIZE >= state.total;
}

// -- bulk actions: devices to another room, responders to another rota ------------------------------

function toggleSelected(id, on) {
  if (on) state.selected.add(id); else state.selected.delete(id);
  renderBulk();
}

function renderBulk() {
  const box = $("#bulk");
  box.hidden = state.selected.size === 0;
  $("#bulk-count").textContent = t("admin.bulk.selected", { count: state.selected.size });
  const controls = $("#bulk-controls");
  if (controls.dataset.kind === state.tab) return;
  controls.dataset.kind = state.tab;
  controls.replaceChildren();
  if (state.tab === "devices") {
    const site = el("select", { id: "bulk-site", "aria-label": t("field.site") });
    const room = el("select", { id: "bulk-room", "aria-label": t("field.room") });
    const fillRooms = () => room.replaceChildren(el("option", { value: "", text: "—" }),
      ...roomsOf(site.value).map(([v, n]) => el("option", { value: v, text: n })));
    site.append(...siteOptions().map(([v, n]) => el("option", { value: v, text: n })));
    site.addEventListener("change", fillRooms);
    fillRooms();
    const go = el("button", { type: "button", id: "bulk-move", class: "primary", text: t("admin.bulk.move") });
    go.addEventListener("click", () => bulk("/api/directory/devices/move", { site: site.value, room: room.value || null }));
    controls.append(site, room, go);
  } else if (state.tab === "responders") {
    const shifts = el("textarea", { id: "bulk-shifts", rows: "2", placeholder: "mon,tue 07:00-19:00", "aria-label": t("field.shifts") });
    const go = el("button", { type: "button", id: "bulk-rota", class: "primary", text: t("admin.bulk.rota") });
    go.addEventListener("click", () => bulk("/api/directory/responders/rota", { shifts: parseShifts(shifts.value) }));
    controls.append(shifts, go);
  }
}

async function bulk(path, body) {
  try {
    const outcome = await api(path, { method: "POST", body: { ids: [...state.selected], ...body } });
    notice(outcome.summary);
    state.selected.clear();
    renderBulk();
    await refreshList();
  } catch (err) {
    showError(err);
  }
}

// -- forms -------------------------------------------------------------------------------------------

function parseShifts(text) {
  return text.split(/[\n;；]/).map((line) => line.trim()).filter(Boolean).map((line) => {
    const [days, hours, wing] = line.split(/\s+/);
    const [start, end] = (hours || "").split("-");
    const shift = { days: days === "*" ? undefined : days.split(","), start, end };
    if (!shift.days) delete shift.days;
    if (wing) shift.wing = wing;
    return shift;
  });
}

const shiftsToText = (shifts) => (shifts || []).map((s) => `${(s.days || []).join(",") || "*"} ${s.start}-${s.end}${s.wing ? ` ${s.wing}` : ""}`).join("\n");

function fieldBox(field, values) {
  const id = `f-${field.name}`;
  const box = el("div", { class: "field", "data-field": field.name });
  box.append(el("label", { for: id, text: t(field.i18n) + (field.required ? " *" : "") }));
  box.append(fieldInput(field, values, id));
  if (field.type === "secret") box.append(keySafeControls(values));
  box.append(el("p", { class: "field-error", "data-error-for": field.name, hidden: true }));
  return box;
}

function fieldInput(field, values, id) {
  const value = values[field.name];
  const fixed = field.fixed && state.editing !== null;
  switch (field.type) {
    case "select": {
      const select = el("select", { id, name: field.name, disabled: fixed });
      if (field.optional) select.append(el("option", { value: "", text: "—" }));
      for (const [v, text] of field.options(values)) select.append(el("option", { value: v, text }));
      if (value !== undefined && value !== null) select.value = value;
      if (field.name === "site") select.addEventListener("change", () => refreshRooms(select.value));
      return select;
    }
    case "checks": {
      const group = el("div", { id, class: "checks", role: "group" });
      for (const [v, text] of field.options(values)) {
        const box = el("input", { type: "checkbox", name: field.name, value: v });
        box.checked = (value || []).includes(v);
        group.append(el("label", {}, box, text));
      }
      return group;
    }
    case "checkbox": {
      const box = el("input", { id, type: "checkbox", name: field.name });
      box.checked = Boolean(value);
      return box;
    }
    case "textarea":
      return Object.assign(el("textarea", { id, name: field.name, rows: "2" }), { value: value ?? "" });
    case "list":
      return el("input", { id, name: field.name, value: (value || []).join("; "), placeholder: t("admin.listHint") });
    case "rooms":
      return Object.assign(el("textarea", { id, name: field.name, rows: "4", placeholder: t("admin.roomsHint") }),
        { value: (value || []).map((r) => [r.id, r.name || "", r.wing || ""].join(", ").replace(/(, )+$/, "")).join("\n") });
    case "shifts":
      return Object.assign(el("textarea", { id, name: field.name, rows: "2", placeholder: "mon,tue 07:00-19:00" }), { value: shiftsToText(value) });
    case "contacts":
      return contactsEditor(id, value || []);
    case "secret":
      return el("input", { id, name: field.name, type: "password", autocomplete: "off",
        placeholder: values.has_key_safe_code ? t("admin.keySafe.keep") : t("admin.keySafe.none") });
    case "password":
      return el("input", { id, name: field.name, type: "password", autocomplete: "new-password" });
    case "number":
      return el("input", { id, name: field.name, type: "number", value: value ?? "" });
    default:
      return el("input", { id, name: field.name, value: value ?? "", readonly: fixed, placeholder: field.placeholder });
  }
}

function refreshRooms(siteId) {
  const select = $("#f-room");
  if (!select) return;
  select.replaceChildren(el("option", { value: "", text: "—" }), ...roomsOf(siteId).map(([v, n]) => el("option", { value: v, text: n })));
}

// Contacts in the order to call them: each row is name, relation, phones, languages.
function contactsEditor(id, contacts) {
  const list = el("ol", { id, class: "contacts" });
  const addRow = (contact = {}) => {
    const row = el("li", { class: "contact" },
      el("input", { name: "c-name", value: contact.name ?? "", "aria-label": t("field.contact_name"), placeholder: t("field.contact_name") }),
      el("input", { name: "c-relation", value: contact.relation ?? "", "aria-label": t("field.contact_relation"), placeholder: t("field.contact_relation") }),
      el("input", { name: "c-phones", value: (contact.phones || []).join("; "), "aria-label": t("field.contact_phones"), placeholder: "+8613800000000" }),
      el("select", { name: "c-language", "aria-label": t("field.language") }, ...LANGS.map((l) => el("option", { value: l, text: t(`language_name.${l}`) }))));
    $("select", row).value = (contact.languages || ["zh-CN"])[0];
    const up = el("button", { type: "button", text: "↑", "aria-label": t("admin.contact.up") });
    up.addEventListener("click", () => row.previousElementSibling?.before(row));
    const remove = el("button", { type: "button", text: "×", "aria-label": t("admin.contact.remove") });
    remove.addEventListener("click", () => row.remove());
    row.append(up, remove);
    list.append(row);
  };
  contacts.forEach(addRow);
  const add = el("button", { type: "button", class: "add-contact", text: t("admin.contact.add") });
  add.addEventListener("click", () => addRow());
  return el("div", {}, list, add);
}

function keySafeControls(values) {
  const box = el("span", { class: "key-safe" });
  if (!values.has_key_safe_code || state.editing === null) return box;
  const remove = el("label", {}, el("input", { type: "checkbox", name: "key_safe_remove" }), t("admin.keySafe.remove"));
  const reveal = el("button", { type: "button", id: "reveal-key-safe", text: t("admin.keySafe.reveal") });
  const shown = el("output", { id: "key-safe-shown" });
  reveal.addEventListener("click", async () => {
    try {
      const { key_safe_code: code } = await api(`/api/directory/residents/${encodeURIComponent(state.editing)}/key-safe`, { method: "POST" });
      shown.textContent = code;
      setTimeout(() => { shown.textContent = ""; }, 30_000); // shown briefly: every reveal is audited
    } catch (err) {
      showError(err);
    }
  });
  box.append(remove, reveal, shown);
  return box;
}

const listOf = (text) => text.split(/[;；,，\n]/).map((s) => s.trim()).filter(Boolean);

// The form's values over the entry as loaded, so fields the form does not show are kept as they are.
function collect(kind, original) {
  const form = $("#entry-form");
  const payload = { ...original };
  delete payload.has_key_safe_code;
  for (const field of KINDS[kind].fields) {
    const input = form.elements[field.name];
    switch (field.type) {
      case "checks":
        payload[field.name] = [...form.querySelectorAll(`input[name="${field.name}"]:checked`)].map((b) => b.value);
        break;
      case "checkbox":
        payload[field.name] = input.checked;
        break;
      case "list":
        payload[field.name] = listOf(input.value);
        break;
      case "rooms":
        payload.rooms = input.value.split("\n").map((l) => l.split(/[,，]/).map((s) => s.trim())).filter((p) => p[0])
          .map(([id, name, wing]) => ({ id, ...(name ? { name } : {}), ...(wing ? { wing } : {}) }));
        break;
      case "shifts":
        payload.shifts = parseShifts(input.value);
        break;
      case "contacts":
        payload.contacts = [...form.querySelectorAll("li.contact")].map((row) => ({
          name: $('[name="c-name"]', row).value.trim(),
          ...($('[name="c-relation"]', row).value.trim() ? { relation: $('[name="c-relation"]', row).value.trim() } : {}),
          phones: listOf($('[name="c-phones"]', row).value),
          languages: [$('[name="c-language"]', row).value],
        }));
        break;
      case "secret":
        // Left empty: the code stays as it is (the server keeps it when the field is absent).
        delete payload.key_safe_code;
        if (input.value) payload.key_safe_code = input.value;
        else if (form.elements.key_safe_remove?.checked) payload.key_safe_code = null;
        break;
      case "password":
        if (input.value) payload.password = input.value; else delete payload.password;
        break;
      case "number":
        payload[field.name] = input.value === "" ? null : Number(input.value);
        break;
      default: {
        const value = input.value.trim();
        if (value === "" && !field.required) delete payload[field.name]; else payload[field.name] = value;
      }
    }
  }
  return payload;
}

async function openEditor(id) {
  const kind = state.tab;
  const spec = KINDS[kind];
  state.editing = id;
  let entry = {};
  try {
    if (id !== null) {
      entry = kind === "users"
        ? (await api("/api/directory/users")).find((u) => u.username === id) || {}
        : await api(`/api/directory/${kind}/${encodeURIComponent(id)}`);
    } else {
      entry = { ...(spec.defaults || {}), ...(state.sites[0] ? { site: state.sites[0].id } : {}) };
    }
  } catch (err) {
    showError(err);
    return;
  }
  state.original = entry;
  $("#editor-title").textContent = id === null ? t(`admin.new.${spec.singular}`) : `${t(`admin.edit.${spec.singular}`)} ${id}`;
  $("#entry-form").replaceChildren(...spec.fields.map((f) => fieldBox(f, entry)));
  clearProblems();
  const editable = canEdit(kind);
  for (const input of $("#entry-form").elements) if (!editable) input.disabled = true;
  $("#entry-save").hidden = !editable;
  const end = $("#entry-end");
  end.hidden = !editable || id === null || !spec.ending || entry.state === "retired" || entry.status === "discharged";
  if (spec.endKey) end.textContent = t(spec.endKey);
  $("#editor").hidden = false;
  $("#editor").scrollIntoView({ block: "nearest" });
  await showHistory(kind, spec, id);
}

async function showHistory(kind, spec, id) {
  const body = $("#history tbody");
  body.replaceChildren();
  if (id === null) return;
  try {
    const entries = await api(`/api/directory/${kind}/${encodeURIComponent(id)}/history`);
    body.replaceChildren(...entries.map((e) => el("tr", {},
      el("td", { text: formatTime(e.at, { full: true }) }), el("td", { text: e.actor }),
      el("td", { text: label("history", e.action) }), el("td", { text: JSON.stringify(e.details) }))));
  } catch (err) {
    showError(err);
  }
}

function clearProblems() {
  for (const p of document.querySelectorAll(".field-error")) Object.assign(p, { textContent: "", hidden: true });
  Object.assign($("#form-problems"), { hidden: true }).replaceChildren();
}

// Each problem next to its field (its first location step); the rest listed under the form.
function showProblems(problems) {
  clearProblems();
  const rest = [];
  for (const problem of problems) {
    const loc = (problem.loc || []).filter((step) => typeof step === "string");
    const field = loc.find((step) => $(`[data-error-for="${step}"]`));
    const target = field && $(`[data-error-for="${field}"]`);
    if (target) {
      target.textContent = [target.textContent, problem.message].filter(Boolean).join(" ");
      target.hidden = false;
    } else {
      rest.push(el("li", { text: problem.message }));
    }
  }
  if (rest.length) Object.assign($("#form-problems"), { hidden: false }).replaceChildren(...rest);
}

async function save() {
  const kind = state.tab;
  const payload = collect(kind, state.original || {});
  const creating = state.editing === null;
  const idField = kind === "users" ? "username" : "id";
  const path = creating ? `/api/directory/${kind}` : `/api/directory/${kind}/${encodeURIComponent(state.editing)}`;
  try {
    const outcome = await api(path, { method: creating ? "POST" : "PUT", body: kind === "users" && !creating ? userChange(payload) : payload });
    notice(outcome.summary || t("admin.saved"));
    if (kind === "sites") await loadSites();
    await refreshList();
    await openEditor(payload[idField]);
  } catch (err) {
    if (err.detail?.problems) showProblems(err.detail.problems);
    else showError(err);
  }
}

const userChange = ({ role, language, sites, disabled, password }) => ({ role, language, sites, disabled, ...(password ? { password } : {}) });

async function endEntry() {
  const kind = state.tab;
  const spec = KINDS[kind];
  if (!window.confirm(t(`${spec.endKey}.confirm`, { id: state.editing }))) return;
  const id = encodeURIComponent(state.editing);
  const path = spec.ending === "withdraw" ? `/api/directory/${kind}/${id}` : `/api/directory/${kind}/${id}/${spec.ending}`;
  try {
    const outcome = await api(path, { method: spec.ending === "withdraw" ? "DELETE" : "POST", body: spec.ending === "discharge" ? {} : undefined });
    notice(outcome.summary);
    await refreshList();
    if (spec.ending === "withdraw") $("#editor").hidden = true; else await openEditor(state.editing);
  } catch (err) {
    if (err.detail?.problems) showProblems(err.detail.problems); else showError(err);
  }
}

// -- pairing of new Zigbee devices -------------------------------------------------------------------

async function refreshPairing() {
  let listing;
  try {
    listing = await api("/api/devices/pairing");
  } catch (err) {
    showError(err);
    return;
  }
  $("#pairing-state").textContent = listing.listening ? t("admin.pairing.listening") : t("admin.pairing.notListening");
  $("#no-offers").hidden = listing.devices.length > 0;
  $("#offers tbody").replaceChildren(...listing.devices.map(offerRow));
}

function offerRow(offer) {
  const tr = el("tr", { "data-ieee": offer.ieee_address, "data-friendly-name": offer.friendly_name });
  tr.append(el("td", {}, el("strong", { text: offer.friendly_name }), el("br"), el("small", { text: offer.ieee_address })));
  tr.append(el("td", { text: [offer.vendor, offer.model, offer.description].filter(Boolean).join(" · ") || t("admin.pairing.interviewing") }));
  tr.append(el("td", { text: offer.exposes.join(", ") }));
  tr.append(el("td", { text: offer.messages ? t("admin.pairing.messages", { count: offer.messages, at: formatTime(offer.last_seen) }) : "—" }));
  const type = el("select", { name: "type", "aria-label": t("field.type") }, ...coded("device_type", DEVICE_TYPES).map(([v, n]) => el("option", { value: v, text: n })));
  type.value = offer.suggested_type;
  const note = el("small", { class: "suggestion", text: t(`admin.pairing.by.${offer.suggested_by}`) });
  const site = el("select", { name: "site", "aria-label": t("field.site") }, el("option", { value: "", text: t("admin.pairing.chooseSite") }),
    ...siteOptions().map(([v, n]) => el("option", { value: v, text: n })));
  const room = el("select", { name: "room", "aria-label": t("field.room") }, el("option", { value: "", text: "—" }));
  const resident = el("select", { name: "resident", "aria-label": t("field.resident") }, el("option", { value: "", text: "—" }));
  site.addEventListener("change", async () => {
    room.replaceChildren(el("option", { value: "", text: "—" }), ...roomsOf(site.value).map(([v, n]) => el("option", { value: v, text: n })));
    const residents = site.value ? (await api(`/api/directory/residents?site=${encodeURIComponent(site.value)}&status=active&limit=500`)).items : [];
    resident.replaceChildren(el("option", { value: "", text: "—" }), ...residents.map((r) => el("option", { value: r.id, text: `${r.name} (${r.room || "—"})` })));
  });
  const bind = el("button", { type: "button", class: "primary bind", text: t("admin.pairing.bind") });
  bind.addEventListener("click", () => bindOffer(offer, { type: type.value, site: site.value, room: room.value, resident: resident.value }, tr));
  const problems = el("p", { class: "field-error", hidden: true });
  tr.append(el("td", { class: "bind-to" }, type, note, site, room, resident, bind, problems));
  return tr;
}

async function bindOffer(offer, choice, row) {
  const device = {
    id: offer.suggested_id, type: choice.type, profile: "zigbee2mqtt", site: choice.site,
    friendly_name: offer.friendly_name, ...(offer.vendor ? { vendor: offer.vendor } : {}), ...(offer.model ? { model: offer.model } : {}),
    ...(choice.room ? { room: choice.room } : {}), ...(choice.resident ? { resident: choice.resident } : {}),
  };
  const problems = $(".field-error", row);
  if (!choice.site) {
    Object.assign(problems, { textContent: t("admin.pairing.chooseSite"), hidden: false });
    return;
  }
  try {
    const outcome = await api("/api/directory/devices", { method: "POST", body: device });
    notice(`${t("admin.pairing.bound", { name: offer.friendly_name })} ${outcome.summary}`);
    await refreshPairing();
  } catch (err) {
    const text = err.detail?.problems ? err.detail.problems.map((p) => p.message).join(" ") : errorText(err);
    Object.assign(problems, { textContent: text, hidden: false });
  }
}

// -- import ------------------------------------------------------------------------------------------

// Where in the file a problem is: a CSV row (the header is row 1) and column, or a YAML line.
function place(problem) {
  if (problem.row && problem.column) return t("admin.import.rowColumn", { row: problem.row, column: problem.column });
  if (problem.row) return t("admin.import.row", { row: problem.row });
  if (problem.line) return t("admin.import.line", { line: problem.line });
  return "";
}

async function importFile(apply) {
  const file = $("#import-file").files[0];
  const result = $("#import-result");
  if (!file) {
    result.replaceChildren(el("p", { class: "form-error", text: t("admin.import.noFile") }));
    return;
  }
  const form = new FormData();
  form.append("file", file);
  if ($("#import-kind").value) form.append("kind", $("#import-kind").value);
  try {
    const outcome = await api(`/api/directory/import/${apply ? "apply" : "preview"}`, { method: "POST", form });
    result.replaceChildren(el("p", { class: "summary", id: "import-summary", text: `${apply ? t("admin.import.applied") : t("admin.import.wouldChange")} ${outcome.summary}` }));
    $("#import-apply").disabled = apply;
    if (apply) await loadSites();
  } catch (err) {
    $("#import-apply").disabled = true;
    const problems = err.detail?.problems || [];
    result.replaceChildren(el("p", { class: "form-error", text: t("admin.import.refused") }),
      el("ul", { id: "import-problems" }, ...problems.map((p) => el("li", { text: `${place(p)}${p.message}` }))));
    if (!problems.length) showError(err);
  }
}

// -- navigation --------------------------------------------------------------------------------------

async function showTab(tab) {
  state.tab = tab;
  state.offset = 0;
  state.query = "";
  state.filters = {};
  state.selected.clear();
  state.editing = null;
  for (const button of document.querySelectorAll("[data-tab]")) button.setAttribute("aria-current", String(button.dataset.tab === tab));
  $("#editor").hidden = true;
  $("#list-view").hidden = !KINDS[tab];
  $("#pairing-view").hidden = tab !== "pairing";
  $("#import-view").hidden = tab !== "import";
  $("#logins-view").hidden = tab !== "logins";
  $("#login-issued").replaceChildren();
  $("#login-issued").hidden = true;
  $("#search").value = "";
  if (KINDS[tab]) {
    // The last tab's rows go at once: clicked before this tab's list arrives, a resident's row would
    // open as a device of the same id.
    $("#entries thead").replaceChildren();
    $("#entries tbody").replaceChildren();
    $("#new-entry").hidden = !canEdit(tab);
    $("#bulk-controls").dataset.kind = "";
    renderFilters(KINDS[tab]);
    renderBulk();
    await refreshList();
  } else if (tab === "logins") {
    await refreshLogins();
  } else if (tab === "pairing") {
    await refreshPairing();
  }
}

function wire() {
  for (const button of document.querySelectorAll("[data-tab]")) button.addEventListener("click", () => showTab(button.dataset.tab));
  $("#search").addEventListener("input", () => {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(() => { state.query = $("#search").value.trim(); state.offset = 0; refreshList(); }, SEARCH_DELAY_MS);
  });
  $("#prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); refreshList(); });
  $("#next-page").addEventListener("click", () => { state.offset += PAGE_SIZE; refreshList(); });
  $("#new-entry").addEventListener("click", () => openEditor(null));
  $("#entry-save").addEventListener("click", save);
  $("#entry-end").addEventListener("click", endEntry);
  $("#entry-cancel").addEventListener("click", () => { $("#editor").hidden = true; });
  $("#error-dismiss").addEventListener("click", () => { $("#error-banner").hidden = true; });
  $("#import-form").addEventListener("submit", (e) => { e.preventDefault(); importFile(false); });
  $("#import-apply").addEventListener("click", () => importFile(true));
  wireLogins({ api, showError });
  $("#lang").addEventListener("change", () => {
    setLanguage($("#lang").value);
    rememberLanguage($("#lang").value, state.user.username);
    translatePage();
    showTab(state.tab);
  });
}

async function start() {
  state.user = await api("/api/me");
  state.csrf = state.user.csrf_token;
  const lang = setLanguage(initialLanguage(state.user));
  $("#lang").value = lang;
  translatePage();
  $("#user").textContent = t("user", { user: state.user.username, role: label("role", state.user.role) });
  // Tabs a manager cannot use are not offered (the server refuses them anyway).
  if (state.user.role !== "admin") {
    for (const tab of ["pairing", "sites", "responders", "users"]) $(`[data-tab="${tab}"]`).hidden = true;
  }
  wire();
  await loadSites();
  const wanted = new URLSearchParams(window.location.search).get("tab");
  await showTab(KINDS[wanted] || ["pairing", "import", "logins"].includes(wanted) ? wanted : "residents");
}

start().catch(showError);
