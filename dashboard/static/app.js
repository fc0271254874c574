// Careline operators' console: sign-in, the live alarm queue (sound, take/release, escalation progress,
// shortcuts), the incident screen (#/incident/{id}), and re-login over the page when the session ends.
import {
  t, label, setLanguage, getLanguage, initialLanguage, rememberLanguage, translatePage, formatAge, formatTime, parseUtc,
} from "./i18n.js";
import { AlarmSound } from "./console-sound.js";
import { QueueTable, compareIncidents, place, takenBy, waiting } from "./console-queue.js";
import { IncidentScreen } from "./console-incident.js";

const $ = (selector) => document.querySelector(selector);
const STATUS_RANK = { open: 0, acknowledged: 1, resolved: 2 };
export const OUTCOMES = ["assisted_on_site", "emergency_services_called", "false_alarm", "test_call",
  "cancelled_by_resident", "no_response", "technical_fault", "repositioned", "other"];
const HOUSEKEEPING_MS = 30_000; // stats refresh and safety resync, also the poll while offline
const RECONNECT_MAX_MS = 30_000;
const OFFLINE_AFTER_FAILURES = 3; // reconnect attempts before the link is called offline, not reconnecting

const state = {
  user: null,
  csrf: null, // the session's CSRF token (from /api/login or /api/me), sent with every change
  expired: false, // the session ended while the console was open: the re-login dialog is up
  incidents: new Map(), // id -> Incident (open or acknowledged only)
  escalations: new Map(), // incident id -> notifications (who was contacted, how, and what became of it)
  gone: new Set(), // ids seen resolved: a late or stale copy must not bring them back
  announced: new Set(), // ids already announced to screen readers
  pending: null, // frames received while a resync is in flight, replayed over the snapshot
  resyncSeq: 0,
  ws: null, wsTimer: null, wsRetry: 0, link: "offline", lastUpdate: null,
  housekeeping: null, deadLetters: null,
  clockOffset: 0, // server clock minus browser clock, when they differ noticeably
  resolving: null, // incident id shown in the resolve dialog
  submitting: false, // our own resolve is in flight: its frame may arrive before the reply
  selected: null, // the row the keyboard works on
  seeded: false, // the first queue after signing in has been announced
  handover: null, // the previous shift's handover shown above the queue
  renderQueued: false, frameTimes: [], // frames' arrival times, for the latency the benchmark reads
  langChosenBeforeLogin: null,
};

// What tests and benchmarks/console_render.py read: counts and timings, never used by the page itself.
const probe = { renders: [], ticks: [], rowsRebuilt: 0 };
window.careline = { probe, state, sound: null };

// The benchmark replays frames through the page's own path, then forces layout, to time one update
// without the gateway's work on the same machine.
window.careline.applyFrame = (inc) => { onIncidentFrame(inc); render(); return document.body.offsetHeight; };

const sound = new AlarmSound();
window.careline.sound = sound;
const table = new QueueTable($("#incidents tbody"), {
  me: () => state.user?.username,
  escalation: (id) => state.escalations.get(String(id)) || [],
  ageSeconds,
});

// status 0 = the network failed; detail = the API's {"detail": "..."} text, if any.
const apiError = (status, detail = null, retryAfter = null) =>
  Object.assign(new Error(`HTTP ${status}`), { status, detail, retryAfter });
const safeJson = (text) => { try { return JSON.parse(text); } catch { return {}; } };
// Show a message element with this text, or hide it when the text is empty.
const say = (selector, text) => Object.assign($(selector), { textContent: text || "", hidden: !text });

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", "X-Careline-Language": getLanguage() } };
  if (method !== "GET" && state.csrf) init.headers["X-CSRF-Token"] = state.csrf;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init).catch(() => { throw apiError(0); });
  noteServerClock(res);
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.ok) return data;
  if (res.status === 401 && state.user && !path.startsWith("/api/login")) sessionEnded();
  throw apiError(res.status, typeof data?.detail === "string" ? data.detail : null, res.headers.get("Retry-After"));
}

function noteServerClock(res) {
  const server = Date.parse(res.headers.get("Date") || "");
  if (Number.isNaN(server)) return;
  const offset = server - Date.now();
  state.clockOffset = Math.abs(offset) > 5000 ? offset : 0; // the header only has whole seconds
}

export function errorText(err) {
  if (err.status === undefined) return String(err);
  if (err.status === 0) return t("error.network");
  if (err.detail) return t("error.detail", { status: err.status, detail: err.detail });
  return t("error.http", { status: err.status });
}

export function showError(err) {
  if (err.status === 401) return; // handled by the sign-in form or dialog
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
  // A take or release changes neither triggers nor status: the newer frame wins on equal progress.
  if (!known || progress(inc) >= progress(known)) state.incidents.set(inc.id, inc);
}

function onIncidentFrame(inc) {
  merge(inc);
  state.pending?.push(inc);
  incidentScreen.incidentChanged(inc);
  scheduleRender();
}

async function resync({ escalations = false } = {}) {
  const seq = ++state.resyncSeq;
  state.pending = [];
  try {
    const data = await api("/api/incidents?status=active&limit=5000");
    if (seq !== state.resyncSeq || !state.user) return;
    const frames = state.pending;
    state.pending = null;
    state.incidents = new Map();
    (data?.incidents || []).forEach(merge);
    frames.forEach(merge);
    state.lastUpdate = Date.now();
    render();
    loadEscalations(escalations);
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
    state.lastUpdate = Date.now();
    if (msg.type === "hello") {
      greeted = true;
      state.wsRetry = 0;
      setLink("live");
      resync({ escalations: true });
    } else if (msg.type === "incident") {
      state.frameTimes.push(performance.now());
      onIncidentFrame(msg.incident);
    } else if (msg.type === "escalation") {
      state.escalations.set(String(msg.incident_id), msg.notifications || []);
      incidentScreen.escalationChanged(msg.incident_id, msg.notifications || []);
      scheduleRender();
    }
  };
  ws.onclose = () => onSocketClosed(ws, greeted);
}

function onSocketClosed(ws, greeted) {
  if (state.ws !== ws) return;
  state.ws = null;
  if (!state.user) return setLink("offline");
  setLink(state.wsRetry >= OFFLINE_AFTER_FAILURES || !navigator.onLine ? "offline" : "reconnecting");
  if (!greeted) api("/api/me").catch(() => {}); // a 401 here brings up the sign-in dialog
  const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** state.wsRetry++) * (0.75 + Math.random() / 2);
  state.wsTimer = setTimeout(connect, delay);
}

function disconnect() {
  clearTimeout(state.wsTimer);
  const ws = state.ws;
  state.ws = null; // first, so that onSocketClosed ignores this socket
  ws?.close();
  setLink("offline");
}

function ageSeconds(iso) {
  return (Date.now() + state.clockOffset - parseUtc(iso)) / 1000;
}

// While the link is live the `escalation` frames keep each incident's record current, so a resync asks
// only for those it has none of; after a reconnect (`all`) every record is read again.
async function loadEscalations(all = false) {
  const ids = [...state.incidents.keys()].filter((id) => all || !state.escalations.has(String(id)));
  await Promise.all(ids.map(async (id) => {
    try {
      state.escalations.set(String(id), await api(`/api/incidents/${id}/escalation`) || []);
    } catch { /* shown again on the next frame */ }
  }));
  scheduleRender();
}

// ---- drawing: at most once per animation frame, however many frames arrive

function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  // A hidden tab gets no animation frames, but its title, sound and announcements must still follow.
  if (document.hidden) setTimeout(render, 100);
  else requestAnimationFrame(render);
}

function sortedIncidents() {
  return [...state.incidents.values()].sort(compareIncidents);
}

function render() {
  const started = performance.now();
  state.renderQueued = false;
  const list = sortedIncidents();
  const rebuilt = table.render(list, getLanguage());
  $("#no-incidents").hidden = list.length > 0;
  const open = list.filter((inc) => inc.status === "open").length;
  $("#incident-count").textContent = list.length ? `(${list.length})` : "";
  $("#open-count").textContent = t("console.openCount", { n: open });
  document.title = open ? `(${open}) ${t("app.title")}` : t("app.title");
  const gone = state.resolving !== null && !state.incidents.has(state.resolving);
  if (gone && !state.submitting) closeResolve(t("resolve.gone"));
  if (state.selected !== null && !state.incidents.has(state.selected)) state.selected = null;
  markSelected();
  announce(list);
  sound.want(list.some(waiting));
  const ended = performance.now();
  probe.rowsRebuilt += rebuilt;
  const entry = { ms: ended - started, rebuilt, frames: state.frameTimes.map((at) => ended - at), painted: null };
  // The next animation frame starts once this one's style, layout and paint are done.
  requestAnimationFrame(() => { entry.painted = performance.now() - started; });
  probe.renders.push(entry);
  if (probe.renders.length > 2000) probe.renders.splice(0, 1000);
  state.frameTimes = [];
}

function tick() {
  const started = performance.now();
  table.tick();
  incidentScreen.tick();
  renderLink();
  renderMute();
  probe.ticks.push(performance.now() - started);
  if (probe.ticks.length > 600) probe.ticks.splice(0, 300);
}

// New alarms are read out once each, at most three by name (then how many); the region is polite so
// it does not cut off what is being read. A sign-in onto a full queue only says how many there are.
const ANNOUNCED_BY_NAME = 3;

function announce(list) {
  const fresh = list.filter((inc) => inc.status === "open" && !state.announced.has(inc.id));
  if (!fresh.length) return;
  fresh.forEach((inc) => state.announced.add(inc.id));
  const many = fresh.length > ANNOUNCED_BY_NAME ? t("console.announceMany", { n: fresh.length }) : "";
  const named = fresh.slice(0, ANNOUNCED_BY_NAME).map((inc) => t("console.announce", {
    rule: label("rule", inc.rule), who: inc.resident_name || inc.resident || "—", place: place(inc),
  }));
  const first = !state.seeded;
  state.seeded = true;
  sayLive(first && many ? many : [...named, many].filter(Boolean).join(" "));
}

function sayLive(text) {
  $("#announcer").textContent = text;
}

// ---- link state, sound, mute

function setLink(link) {
  state.link = link;
  renderLink();
}

function renderLink() {
  const node = $("#live-status");
  node.dataset.state = state.link;
  const words = { live: t("live.live"), reconnecting: t("live.offline"), offline: t("console.link.offline") };
  node.querySelector(".live-label").textContent = words[state.link];
  node.title = t(state.link === "live" ? "live.title.live" : "live.title.offline");
  const since = state.lastUpdate === null ? "" : t("console.lastUpdate", { age: formatAge((Date.now() - state.lastUpdate) / 1000) });
  node.querySelector(".live-since").textContent = since;
}

function renderMute() {
  const node = $("#sound");
  const status = sound.state;
  node.dataset.state = status;
  node.dataset.sounding = String(sound.sounding);
  node.dataset.chimes = String(sound.chimes);
  const left = Math.ceil(sound.muteLeftMs() / 1000);
  const text = status === "blocked" ? t("console.sound.blocked")
    : status === "muted" ? t("console.sound.muted", { left: formatAge(left) })
      : t(sound.sounding ? "console.sound.sounding" : "console.sound.on");
  $("#sound-label").textContent = text;
  $("#mute").textContent = t(status === "muted" ? "console.unmute" : "console.mute");
  $("#mute").setAttribute("aria-pressed", String(status === "muted"));
}

// ---- selection, actions, shortcuts

function markSelected() {
  for (const row of document.querySelectorAll("#incidents tr.selected")) {
    if (Number(row.dataset.incidentId) !== state.selected) { row.classList.remove("selected"); row.removeAttribute("aria-selected"); }
  }
  const row = state.selected === null ? null : table.row(state.selected);
  row?.classList.add("selected");
  row?.setAttribute("aria-selected", "true");
}

function select(id, focus = true) {
  state.selected = id;
  markSelected();
  const row = table.row(id);
  if (focus && row) { row.focus({ preventScroll: true }); row.scrollIntoView({ block: "nearest" }); }
}

function moveSelection(step) {
  const list = sortedIncidents();
  if (!list.length) return;
  const at = list.findIndex((inc) => inc.id === state.selected);
  const next = at < 0 ? (step > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, at + step));
  select(list[next].id);
}

// "Next alarm": the first one in queue order that nobody has taken or acknowledged, else the next row.
function nextAlarm() {
  const next = sortedIncidents().find(waiting);
  if (next) select(next.id);
  else moveSelection(1);
}

async function take(id, { force = false } = {}) {
  const inc = state.incidents.get(id);
  const holder = inc && takenBy(inc);
  if (!force && holder && holder !== state.user.username) {
    if (!(await confirmTakeOver(t("console.takeOverConfirm", { user: holder })))) return;
    force = true;
  }
  try {
    merge(await api(`/api/incidents/${id}/take`, { method: "POST", body: { force } }));
    render();
  } catch (err) {
    if (err.status === 409 && !force) {
      // Someone took it a moment ago: the gateway's answer names them; offer the take-over.
      if (await confirmTakeOver(err.detail || t("console.takeOverTitle"))) return take(id, { force: true });
      return;
    }
    showError(err);
  }
}

async function release(id) {
  try {
    merge(await api(`/api/incidents/${id}/release`, { method: "POST" }));
    render();
  } catch (err) {
    showError(err);
  }
}

function confirmTakeOver(text) {
  const dialog = $("#takeover-dialog");
  $("#takeover-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
  });
}

export async function acknowledge(id, button) {
  if (button) button.disabled = true;
  try {
    merge(await api(`/api/incidents/${id}/ack`, { method: "POST" }));
    render();
  } catch (err) {
    showError(err);
    if (button) button.disabled = false;
  }
}

function act(action, id, button) {
  if (!state.incidents.has(id)) return;
  select(id, false);
  const inc = state.incidents.get(id);
  if (action === "ack" && inc.status === "open") acknowledge(id, button);
  else if (action === "take") take(id);
  else if (action === "release") release(id);
  else if (action === "resolve") openResolve(id);
  else if (action === "open") location.hash = `#/incident/${id}`;
}

function onTableClick(event) {
  const target = event.target.closest("[data-action]");
  const row = event.target.closest("tr[data-incident-id]");
  if (!row) return;
  const id = Number(row.dataset.incidentId);
  if (!target) return select(id, false);
  if (target.tagName === "A") event.preventDefault();
  act(target.dataset.action, id, target);
}

const SHORTCUTS = {
  j: () => moveSelection(1), ArrowDown: () => moveSelection(1),
  k: () => moveSelection(-1), ArrowUp: () => moveSelection(-1),
  n: nextAlarm,
  t: () => state.selected !== null && act(takenBy(state.incidents.get(state.selected)) === state.user.username ? "release" : "take", state.selected),
  a: () => state.selected !== null && act("ack", state.selected),
  r: () => state.selected !== null && act("resolve", state.selected),
  o: () => state.selected !== null && act("open", state.selected),
  Enter: () => state.selected !== null && act("open", state.selected),
  m: () => sound.toggleMute(),
  w: () => toggleWall(),
  "?": () => toggleHelp(),
};

function onKey(event) {
  sound.unlock();
  if (!state.user || state.expired || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]:not(#help-dialog)")) return;
  if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
  if (event.key === "Escape" && incidentScreen.isOpen()) { location.hash = ""; return; }
  if (event.key === "Enter" && event.target.closest?.("button, a")) return; // the focused control's own Enter
  if (incidentScreen.isOpen() && !["m", "?", "w", "Escape"].includes(event.key)) {
    const id = incidentScreen.id;
    const onScreen = { a: "ack", t: takenBy(state.incidents.get(id) || {}) === state.user.username ? "release" : "take", r: "resolve" };
    if (onScreen[event.key]) { event.preventDefault(); act(onScreen[event.key], id); }
    return;
  }
  const shortcut = SHORTCUTS[event.key];
  if (!shortcut) return;
  event.preventDefault();
  shortcut();
}

function toggleHelp() {
  const dialog = $("#help-dialog");
  if (dialog.open) dialog.close();
  else dialog.showModal();
}

function toggleWall(on = !document.body.classList.contains("wall")) {
  document.body.classList.toggle("wall", on);
  $("#wall").setAttribute("aria-pressed", String(on));
  try { localStorage.setItem("careline.wall", on ? "1" : ""); } catch { /* storage disabled */ }
}

// ---- resolve

function fillOutcomes() {
  const select = $("#resolve-outcome");
  const chosen = select.value;
  select.replaceChildren(
    Object.assign(document.createElement("option"), { value: "", disabled: true, selected: true, textContent: t("resolve.choose") }),
    ...OUTCOMES.map((code) => Object.assign(document.createElement("option"), { value: code, textContent: label("outcome", code) })),
  );
  select.value = chosen;
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
  $("#resolve-dispatch").hidden = true;
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

// "No response from the resident" is never closed quietly: somebody must have been sent first.
function onOutcomeChosen() {
  const inc = state.incidents.get(state.resolving);
  const needsDispatch = $("#resolve-outcome").value === "no_response" && inc && !inc.dispatched;
  say("#resolve-error", needsDispatch ? t("console.noResponse.dispatchFirst") : "");
  $("#resolve-dispatch").hidden = !needsDispatch;
}

function dispatchFromResolve() {
  const id = state.resolving;
  closeResolve();
  location.hash = `#/incident/${id}/dispatch`;
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
    incidentScreen.incidentChanged(inc);
    render();
  } catch (err) {
    say("#resolve-error", errorText(err)); // the dialog sits above the banner, so the reason is shown here
    if (err.status === 409 && outcome === "no_response") $("#resolve-dispatch").hidden = false;
    $("#resolve-submit").disabled = false;
  } finally {
    state.submitting = false;
  }
}

export const consoleApi = { api, showError, errorText, acknowledge, take, release, openResolve, state };
const incidentScreen = new IncidentScreen(consoleApi);

// ---- views, session, sign-in

function showView(name) {
  $("#loading").hidden = name !== "loading";
  $("#login-view").hidden = name !== "login";
  $("#console").hidden = name !== "queue";
  $("#session").hidden = name !== "queue";
}

// Where to go after signing in: `?next=` when it is a path on this site (never another origin).
function nextPath() {
  const next = new URLSearchParams(location.search).get("next");
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.includes("\\")) return null;
  try {
    const url = new URL(next, location.origin);
    return url.origin === location.origin && url.pathname !== "/" ? `${url.pathname}${url.search}${url.hash}` : null;
  } catch {
    return null;
  }
}

function startSession(user) {
  state.user = user;
  state.csrf = user.csrf_token;
  const chosen = state.langChosenBeforeLogin;
  if (chosen) rememberLanguage(chosen, user.username);
  state.langChosenBeforeLogin = null;
  const next = nextPath();
  if (next) return location.replace(next);
  if (user.role === "carer") return location.replace("/carer"); // the console is not theirs
  applyLanguage(initialLanguage(user));
  showView("queue");
  render();
  connect();
  resync();
  refreshStats();
  loadHandoverNotice();
  clearInterval(state.housekeeping);
  state.housekeeping = setInterval(() => { resync(); refreshStats(); }, HOUSEKEEPING_MS);
  incidentScreen.route();
}

// The session ended with the console open: the queue stays on screen under a sign-in dialog, the sound
// keeps going, and signing in again picks up where it was.
function sessionEnded() {
  if (state.expired) return;
  state.expired = true;
  clearInterval(state.housekeeping);
  disconnect();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("#relogin-username").value = state.user?.username || "";
  $("#relogin-password").value = "";
  say("#relogin-error", "");
  $("#relogin-dialog").showModal();
  $(state.user?.username ? "#relogin-password" : "#relogin-username").focus();
}

async function submitRelogin(event) {
  event.preventDefault();
  const username = $("#relogin-username").value.trim();
  const password = $("#relogin-password").value;
  $("#relogin-submit").disabled = true;
  try {
    const user = await api("/api/login", { method: "POST", body: { username, password } });
    $("#relogin-password").value = "";
    state.expired = false;
    $("#relogin-dialog").close();
    if (user.username !== state.user?.username) return location.reload(); // someone else's screen now
    state.user = user;
    state.csrf = user.csrf_token;
    state.wsRetry = 0;
    connect();
    resync();
    refreshStats();
    state.housekeeping = setInterval(() => { resync(); refreshStats(); }, HOUSEKEEPING_MS);
    incidentScreen.route();
  } catch (err) {
    say("#relogin-error", loginErrorText(err));
  } finally {
    $("#relogin-submit").disabled = false;
  }
}

function showLogin(message) {
  state.user = null;
  state.csrf = null;
  clearInterval(state.housekeeping);
  disconnect();
  closeResolve();
  incidentScreen.close();
  state.incidents = new Map();
  state.gone = new Set();
  state.resyncSeq += 1;
  render();
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

// ---- the previous shift's handover notes, until this operator dismisses them

const dismissedKey = () => `careline.handoverSeen:${state.user?.username}`;

async function loadHandoverNotice() {
  let latest = null;
  try {
    latest = await api("/api/handovers/latest");
  } catch {
    return; // none yet, or a gateway without handovers
  }
  const seen = (() => { try { return localStorage.getItem(dismissedKey()); } catch { return null; } })();
  // Shown to the incoming operator: not to the one who wrote it, nor again once read.
  if (!latest?.id || String(latest.id) === seen || !latest.notes || latest.signed_by === state.user?.username) return;
  state.handover = latest;
  $("#handover-notice").dataset.handoverId = latest.id;
  $("#handover-notice-text").textContent = latest.notes;
  renderHandoverNotice();
  $("#handover-notice").hidden = false;
}

function renderHandoverNotice() {
  const latest = state.handover;
  if (!latest) return;
  $("#handover-notice-by").textContent = t("console.handover.from", {
    user: latest.signed_by, time: formatTime(latest.signed_at),
  });
}

function dismissHandoverNotice() {
  const notice = $("#handover-notice");
  try { localStorage.setItem(dismissedKey(), notice.dataset.handoverId || ""); } catch { /* storage disabled */ }
  notice.hidden = true;
  state.handover = null;
}

function renderDeadLetters() {
  const node = $("#dead-letters");
  const n = state.deadLetters;
  node.textContent = t("deadLetters", { n: n ?? "?" });
  node.dataset.count = n ?? "";
  node.classList.toggle("warn", n === null || n > 0);
}

function applyLanguage(lang) {
  $("#lang").value = setLanguage(lang);
  translatePage();
  fillOutcomes();
  renderLink();
  renderMute();
  renderDeadLetters();
  renderHandoverNotice();
  const user = state.user;
  $("#user").textContent = user ? t("user", { user: user.username, role: label("role", user.role) }) : "";
  // Operators read the directory but do not edit it: the administration page is for managers and admins.
  // The office pages refuse operators anyway; their links are shown to managers and admins only.
  for (const link of document.querySelectorAll("a.managers")) link.hidden = !user || user.role === "operator";
  if (user) render();
  incidentScreen.relabel();
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
  $("#relogin-form").addEventListener("submit", submitRelogin);
  $("#relogin-dialog").addEventListener("cancel", (event) => event.preventDefault()); // no way round it
  $("#logout").addEventListener("click", logout);
  $("#lang").addEventListener("change", onLanguageChange);
  $("#error-dismiss").addEventListener("click", () => { $("#error-banner").hidden = true; });
  $("#incidents tbody").addEventListener("click", onTableClick);
  $("#resolve-form").addEventListener("submit", submitResolve);
  $("#resolve-outcome").addEventListener("change", onOutcomeChosen);
  $("#resolve-dispatch").addEventListener("click", dispatchFromResolve);
  $("#resolve-cancel").addEventListener("click", () => closeResolve());
  $("#resolve-dialog").addEventListener("close", () => { state.resolving = null; });
  $("#mute").addEventListener("click", () => sound.toggleMute());
  $("#wall").addEventListener("click", () => toggleWall());
  $("#help").addEventListener("click", toggleHelp);
  $("#help-close").addEventListener("click", toggleHelp);
  $("#handover-dismiss").addEventListener("click", dismissHandoverNotice);
  document.addEventListener("keydown", onKey);
  document.addEventListener("pointerdown", () => sound.unlock(), true);
  sound.onChange(renderMute);
  window.addEventListener("hashchange", () => incidentScreen.route());
  window.addEventListener("online", () => { if (state.user && !state.ws && !state.expired) connect(); });
  window.addEventListener("offline", () => { if (!state.ws) setLink("offline"); });
}

applyLanguage(initialLanguage(null));
try { if (localStorage.getItem("careline.wall")) toggleWall(true); } catch { /* storage disabled */ }
showView("loading");
bindEvents();
setInterval(tick, 1000);
boot();
