// Careline operator page: login, live incident queue, acknowledge and resolve.
import {
  t, label, setLanguage, initialLanguage, rememberLanguage, translatePage, formatAge, formatTime, parseUtc,
} from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };
const SEVERITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
const OUTCOMES = ["assisted_on_site", "emergency_services_called", "false_alarm",
  "cancelled_by_resident", "technical_fault", "other"];
const HOUSEKEEPING_MS = 30_000; // stats refresh and safety resync, also the poll while offline
const RECONNECT_MAX_MS = 30_000;

const state = {
  user: null,
  csrf: null, // the session's CSRF token (from /api/login or /api/me), sent with every change
  incidents: new Map(), // id -> Incident (open or acknowledged only)
  escalations: new Map(), // incident id -> notifications (who was contacted, how, and what became of it)
  gone: new Set(), // ids seen resolved: a late or stale copy must not bring them back
  pending: null, // frames received while a resync is in flight, replayed over the snapshot
  resyncSeq: 0,
  ws: null, wsTimer: null, wsRetry: 0, live: false,
  housekeeping: null, deadLetters: null,
  clockOffset: 0, // server clock minus browser clock, when they differ noticeably
  resolving: null, // incident id shown in the resolve dialog
  submitting: false, // our own resolve is in flight: its frame may arrive before the reply
  langChosenBeforeLogin: null,
};

// status 0 = the network failed; detail = the API's {"detail": "..."} text, if any.
const apiError = (status, detail = null, retryAfter = null) =>
  Object.assign(new Error(`HTTP ${status}`), { status, detail, retryAfter });
const safeJson = (text) => { try { return JSON.parse(text); } catch { return {}; } };
// Show a message element with this text, or hide it when the text is empty.
const say = (selector, text) => Object.assign($(selector), { textContent: text || "", hidden: !text });

async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET" && state.csrf) init.headers["X-CSRF-Token"] = state.csrf;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init).catch(() => { throw apiError(0); });
  noteServerClock(res);
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.ok) return data;
  if (res.status === 401 && state.user) showLogin(t("login.expired"));
  throw apiError(res.status, typeof data?.detail === "string" ? data.detail : null, res.headers.get("Retry-After"));
}

function noteServerClock(res) {
  const server = Date.parse(res.headers.get("Date") || "");
  if (Number.isNaN(server)) return;
  const offset = server - Date.now();
  state.clockOffset = Math.abs(offset) > 5000 ? offset : 0; // the header only has whole seconds
}

function errorText(err) {
  if (err.status === undefined) return String(err);
  if (err.status === 0) return t("error.network");
  if (err.detail) return t("error.detail", { status: err.status, detail: err.detail });
  return t("error.http", { status: err.status });
}

function showError(err) {
  if (err.status === 401) return; // handled by the login form
  say("#error-text", typeof err === "string" ? err : errorText(err));
  $("#error-banner").hidden = false;
}

const progress = (inc) => (inc.trigger_count || 0) * 10 + (STATUS_RANK[inc.status] ?? 0);

function merge(inc) {
  if (!inc || state.gone.has(inc.id)) return;
  if (inc.status === "resolved") {
    state.incidents.delete(inc.id);
    state.gone.add(inc.id);
    return;
  }
  const known = state.incidents.get(inc.id);
  if (!known || progress(inc) >= progress(known)) state.incidents.set(inc.id, inc);
}

function onIncidentFrame(inc) {
  merge(inc);
  state.pending?.push(inc);
  render();
}

async function resync() {
  const seq = ++state.resyncSeq;
  state.pending = [];
  try {
    const data = await api("/api/incidents?status=active");
    if (seq !== state.resyncSeq || !state.user) return;
    const frames = state.pending;
    state.pending = null;
    state.incidents = new Map();
    (data?.incidents || []).forEach(merge);
    frames.forEach(merge);
    render();
    loadEscalations();
  } catch (err) {
    if (seq !== state.resyncSeq) return;
    state.pending = null;
    if (err.status === 0) state.ws?.close(); // the live link is probably dead too: reconnect
    else showError(err);
  }
}

async function refreshStats() {
  try {
    const stats = await api("/api/stats");
    state.deadLetters = stats?.dead_letters ?? null;
  } catch {
    state.deadLetters = null;
  }
  renderDeadLetters();
}

function connect() {
  clearTimeout(state.wsTimer);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/ws`);
  let greeted = false;
  state.ws = ws;
  ws.onmessage = (event) => {
    const msg = safeJson(event.data);
    if (msg.type === "hello") {
      greeted = true;
      state.wsRetry = 0;
      setLive(true);
      resync();
    } else if (msg.type === "incident") {
      onIncidentFrame(msg.incident);
    } else if (msg.type === "escalation") {
      state.escalations.set(String(msg.incident_id), msg.notifications || []);
      render();
    }
  };
  ws.onclose = () => onSocketClosed(ws, greeted);
}

function onSocketClosed(ws, greeted) {
  if (state.ws !== ws) return;
  state.ws = null;
  setLive(false);
  if (!state.user) return;
  if (!greeted) api("/api/me").catch(() => {}); // a 401 here brings back the login form
  const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** state.wsRetry++) * (0.75 + Math.random() / 2);
  state.wsTimer = setTimeout(connect, delay);
}

function disconnect() {
  clearTimeout(state.wsTimer);
  const ws = state.ws;
  state.ws = null; // first, so that onSocketClosed ignores this socket
  ws?.close();
  setLive(false);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

const rank = (table, key) => table[key] ?? 9;

function sortedIncidents() {
  return [...state.incidents.values()].sort((a, b) =>
    rank(STATUS_RANK, a.status) - rank(STATUS_RANK, b.status)
    || rank(SEVERITY_RANK, a.severity) - rank(SEVERITY_RANK, b.severity)
    || parseUtc(a.opened_at) - parseUtc(b.opened_at)
    || a.id - b.id);
}

function ageSeconds(iso) {
  return (Date.now() + state.clockOffset - parseUtc(iso)) / 1000;
}

function place(inc) {
  const site = inc.site_name || inc.site || "";
  return inc.room ? `${site} · ${inc.room}` : site || "—";
}

function ageCell(inc) {
  const age = el("span", { class: "age", "data-opened": inc.opened_at }, formatAge(ageSeconds(inc.opened_at)));
  const when = el("time", { datetime: inc.opened_at, title: formatTime(inc.opened_at, { full: true }) },
    t("openedAt", { time: formatTime(inc.opened_at) }));
  return el("td", {}, age, el("br"), when);
}

function statusCell(inc) {
  const td = el("td", {}, el("span", { class: `status status-${inc.status}` }, label("status", inc.status)));
  if (inc.status === "acknowledged" && inc.acknowledged_by) {
    const by = t("ackBy", { user: inc.acknowledged_by, time: formatTime(inc.acknowledged_at) });
    td.append(el("br"), el("small", {}, by));
  }
  const progress = escalationLine(inc);
  if (progress) td.append(el("br"), progress);
  return td;
}

function escalationLine(inc) {
  const sent = state.escalations.get(String(inc.id)) || [];
  if (!sent.length) return null;
  const latest = sent.slice(-3).map((n) =>
    `${n.responder} · ${label("channel", n.channel)} · ${label("delivery", n.status)}`);
  return el("small", { class: "escalation", "data-notifications": sent.length },
    t("escalation.progress", { tier: sent[sent.length - 1].tier, list: latest.join("; ") }));
}

async function loadEscalations() {
  await Promise.all([...state.incidents.keys()].map(async (id) => {
    try {
      state.escalations.set(String(id), await api(`/api/incidents/${id}/escalation`) || []);
    } catch { /* shown again on the next frame */ }
  }));
  render();
}

function actionsCell(inc) {
  const ack = inc.status === "open"
    ? el("button", { type: "button", class: "primary", "data-action": "ack" }, t("action.ack")) : null;
  const resolve = el("button", { type: "button", "data-action": "resolve" }, t("action.resolve"));
  return el("td", { class: "actions" }, ack, resolve);
}

function ruleCell(inc) {
  const td = el("td", { title: inc.device_id ? t("device", { id: inc.device_id }) : null }, label("rule", inc.rule));
  const faults = inc.faults || [];
  if (faults.length) {
    // The fault texts are the gateway's technical wording (as in dead letters) for the technician.
    td.append(el("br"), el("small", { class: "faults", title: t("faults.title", { list: faults.join("\n") }) },
      t("faults", { n: faults.length })));
  }
  return td;
}

function renderRow(inc) {
  const row = el("tr", {
    "data-incident-id": inc.id, "data-status": inc.status, "data-severity": inc.severity,
    class: inc.status === "open" && inc.severity === "critical" ? "alerting" : null,
  });
  const triggers = inc.trigger_count > 1
    ? el("span", { title: t("triggers.title", { n: inc.trigger_count }) }, `×${inc.trigger_count}`) : "";
  row.append(
    el("td", {}, el("span", { class: `badge sev-${inc.severity}` }, label("severity", inc.severity))),
    ruleCell(inc),
    el("td", {}, inc.resident_name || inc.resident || "—"),
    el("td", {}, place(inc)),
    ageCell(inc),
    el("td", { class: "triggers" }, triggers),
    statusCell(inc),
    actionsCell(inc),
  );
  return row;
}

function focusedAction() {
  const button = document.activeElement?.closest?.("#incidents button[data-action]");
  if (!button) return null;
  return { id: button.closest("tr").dataset.incidentId, action: button.dataset.action };
}

function restoreFocus(focus) {
  if (!focus) return;
  const row = $(`#incidents tr[data-incident-id="${CSS.escape(focus.id)}"]`);
  (row?.querySelector(`[data-action="${focus.action}"]`) || row?.querySelector("[data-action]"))?.focus();
}

function render() {
  const list = sortedIncidents();
  const focus = focusedAction();
  $("#incidents tbody").replaceChildren(...list.map(renderRow));
  restoreFocus(focus);
  $("#no-incidents").hidden = list.length > 0;
  const open = list.filter((inc) => inc.status === "open").length;
  $("#incident-count").textContent = list.length ? `(${list.length})` : "";
  document.title = open ? `(${open}) ${t("app.title")}` : t("app.title");
  const gone = state.resolving !== null && !state.incidents.has(state.resolving);
  if (gone && !state.submitting) closeResolve(t("resolve.gone"));
}

function tickAges() {
  for (const node of document.querySelectorAll("#incidents [data-opened]")) {
    node.textContent = formatAge(ageSeconds(node.dataset.opened));
  }
}

function setLive(live) {
  state.live = live;
  const node = $("#live-status");
  node.dataset.state = live ? "live" : "offline";
  node.querySelector(".live-label").textContent = t(live ? "live.live" : "live.offline");
  node.title = t(live ? "live.title.live" : "live.title.offline");
}

function renderDeadLetters() {
  const node = $("#dead-letters");
  const n = state.deadLetters;
  node.textContent = t("deadLetters", { n: n ?? "?" });
  node.dataset.count = n ?? "";
  node.classList.toggle("warn", n === null || n > 0);
}

function fillOutcomes() {
  const select = $("#resolve-outcome");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "", disabled: "", selected: "" }, t("resolve.choose")),
    ...OUTCOMES.map((code) => el("option", { value: code }, t(`outcome.${code}`))),
  );
  select.value = chosen;
}

function applyLanguage(lang) {
  $("#lang").value = setLanguage(lang);
  translatePage();
  fillOutcomes();
  setLive(state.live);
  renderDeadLetters();
  const user = state.user;
  $("#user").textContent = user ? t("user", { user: user.username, role: label("role", user.role) }) : "";
  // Operators read the directory but do not edit it: the administration page is for managers and admins.
  $("#admin-link").hidden = !user || user.role === "operator";
  if (user) render();
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    merge(await api(`/api/incidents/${id}/ack`, { method: "POST" }));
    render();
  } catch (err) {
    showError(err);
    button.disabled = false;
  }
}

function openResolve(id) {
  const inc = state.incidents.get(id);
  if (!inc) return;
  state.resolving = id;
  const who = inc.resident_name || inc.resident;
  $("#resolve-summary").textContent = [label("rule", inc.rule), who, place(inc)].filter(Boolean).join(" — ");
  $("#resolve-outcome").value = "";
  $("#resolve-note").value = "";
  say("#resolve-error", "");
  $("#resolve-submit").disabled = false;
  $("#resolve-dialog").showModal();
  $("#resolve-outcome").focus();
}

function closeResolve(message) {
  state.resolving = null;
  const dialog = $("#resolve-dialog");
  if (dialog.open) dialog.close();
  if (message) showError(message);
}

async function submitResolve(event) {
  event.preventDefault();
  const id = state.resolving;
  const outcome = $("#resolve-outcome").value;
  const note = $("#resolve-note").value.trim();
  if (!outcome) return say("#resolve-error", t("resolve.needOutcome"));
  if (outcome === "other" && !note) return say("#resolve-error", t("resolve.needNote"));
  $("#resolve-submit").disabled = true;
  state.submitting = true;
  try {
    const inc = await api(`/api/incidents/${id}/resolve`, { method: "POST", body: { outcome, note } });
    closeResolve();
    merge(inc);
    render();
  } catch (err) {
    say("#resolve-error", errorText(err)); // the dialog sits above the banner, so repeat the error there
    showError(err);
    $("#resolve-submit").disabled = false;
  } finally {
    state.submitting = false;
  }
}

function onTableClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = Number(button.closest("tr").dataset.incidentId);
  if (button.dataset.action === "ack") acknowledge(id, button);
  else openResolve(id);
}

function showView(name) {
  $("#loading").hidden = name !== "loading";
  $("#login-view").hidden = name !== "login";
  $("#queue-view").hidden = name !== "queue";
  $("#session").hidden = name !== "queue";
}

function startSession(user) {
  state.user = user;
  state.csrf = user.csrf_token;
  const chosen = state.langChosenBeforeLogin;
  if (chosen) rememberLanguage(chosen, user.username);
  state.langChosenBeforeLogin = null;
  applyLanguage(initialLanguage(user));
  showView("queue");
  render();
  connect();
  resync();
  refreshStats();
  state.housekeeping = setInterval(() => { resync(); refreshStats(); }, HOUSEKEEPING_MS);
}

function showLogin(message) {
  state.user = null;
  state.csrf = null;
  clearInterval(state.housekeeping);
  disconnect();
  closeResolve();
  state.incidents = new Map();
  state.gone = new Set();
  state.resyncSeq += 1;
  $("#incidents tbody").replaceChildren();
  document.title = t("app.title");
  showView("login"); // keeps the current language: the same operator usually signs back in
  say("#login-error", message);
  $("#username").focus();
}

async function submitLogin(event) {
  event.preventDefault();
  const username = $("#username").value.trim();
  const password = $("#password").value;
  $("#login-submit").disabled = true;
  try {
    const user = await api("/api/login", { method: "POST", body: { username, password } });
    $("#password").value = "";
    say("#login-error", "");
    startSession(user);
  } catch (err) {
    say("#login-error", loginErrorText(err));
  } finally {
    $("#login-submit").disabled = false;
  }
}

function loginErrorText(err) {
  if (err.status === 401) return t("login.bad");
  if (err.status !== 429) return errorText(err);
  return t("login.throttled", { s: err.retryAfter || "?" });
}

async function logout() {
  try {
    await api("/api/logout", { method: "POST" });
    $("#error-banner").hidden = true;
    showLogin();
  } catch (err) {
    showError(err);
  }
}

function onLanguageChange() {
  const lang = $("#lang").value;
  rememberLanguage(lang, state.user?.username);
  if (!state.user) state.langChosenBeforeLogin = lang;
  applyLanguage(lang);
}

async function boot() {
  try {
    const user = await api("/api/me");
    $("#error-banner").hidden = true;
    startSession(user);
  } catch (err) {
    if (err.status === 401) return showLogin();
    showError(err);
    setTimeout(boot, 5000); // gateway unreachable: keep trying
  }
}

function bindEvents() {
  $("#login-form").addEventListener("submit", submitLogin);
  $("#logout").addEventListener("click", logout);
  $("#lang").addEventListener("change", onLanguageChange);
  $("#error-dismiss").addEventListener("click", () => { $("#error-banner").hidden = true; });
  $("#incidents tbody").addEventListener("click", onTableClick);
  $("#resolve-form").addEventListener("submit", submitResolve);
  $("#resolve-cancel").addEventListener("click", () => closeResolve());
  $("#resolve-dialog").addEventListener("close", () => { state.resolving = null; });
  window.addEventListener("online", () => { if (state.user && !state.ws) connect(); });
}

applyLanguage(initialLanguage(null));
showView("loading");
bindEvents();
setInterval(tickAges, 1000);
boot();
