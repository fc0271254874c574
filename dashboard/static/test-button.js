// Testing alarm buttons (docs/duty.md): a tester starts test mode for one device, presses it, and sees
// "test received" the moment the gateway has recorded the press (the /api/ws frame `device_test`). The
// press is decided in the gateway's commit; this page only arms, disarms and shows.
import { t, label, formatTime, parseUtc } from "/static/i18n.js";
import { $, api, el, showError, hideError, startPage } from "/static/page.js";

const view = { board: null, received: new Map(), find: "" };

const armedUntil = (device) => (device.test_mode ? parseUtc(device.test_mode.expires_at) : null);

function secondsLeft(device) {
  const until = armedUntil(device);
  return until ? Math.max(0, Math.round((until - Date.now()) / 1000)) : 0;
}

function stateOf(device) {
  if (view.received.has(device.device_id)) return "received";
  if (device.test_mode && secondsLeft(device) > 0) return "armed";
  if (device.test_mode) return "expired";
  return "idle";
}

function statusText(device, state) {
  if (state === "received") {
    return t("duty.page.received", { time: formatTime(view.received.get(device.device_id)) });
  }
  if (state === "armed") {
    const left = secondsLeft(device);
    const clock = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    return t("duty.page.armed", { left: clock });
  }
  if (state === "expired") return t("duty.page.expired");
  return "";
}

function lastTest(device) {
  if (!device.last_test_at) return t("duty.page.neverTested");
  return t("duty.page.lastTest", { time: formatTime(device.last_test_at), count: device.test_count });
}

function minutesPicker(board) {
  const choices = [5, board.default_minutes, 15, board.max_minutes];
  const unique = [...new Set(choices)].filter((m) => m <= board.max_minutes).sort((a, b) => a - b);
  const picker = el("select", { class: "test-minutes", "aria-label": t("duty.page.minutes") },
    ...unique.map((m) => el("option", { value: m, selected: m === board.default_minutes },
      t("duty.page.minutesOption", { minutes: m }))));
  return picker;
}

function card(device) {
  const state = stateOf(device);
  const who = device.resident_name || device.resident;
  const place = [device.site_name, device.room].filter(Boolean).join(" · ");
  const picker = minutesPicker(view.board);
  const start = el("button", { type: "button", class: "primary test-start" },
    state === "armed" ? t("duty.page.restart") : t("duty.page.start"));
  start.addEventListener("click", () => arm(device, Number(picker.value)));
  const stop = el("button", { type: "button", class: "test-stop", hidden: state !== "armed" }, t("duty.page.stop"));
  stop.addEventListener("click", () => disarm(device));
  return el("li", { class: "test-card", "data-device": device.device_id, "data-state": state },
    el("h2", {}, `${label("device_type", device.type)} · ${device.device_id}`),
    el("p", { class: "muted" }, [who, place].filter(Boolean).join(" — ")),
    el("p", { class: "test-last" }, lastTest(device)),
    el("div", { class: "test-actions" }, picker, start, stop),
    el("p", { class: "test-status", role: "status", "aria-live": "polite" }, statusText(device, state)));
}

function matches(device) {
  const find = view.find.trim().toLowerCase();
  if (!find) return true;
  return [device.device_id, device.resident_name, device.resident, device.room, device.site_name]
    .some((v) => v && String(v).toLowerCase().includes(find));
}

function render() {
  if (!view.board) return;
  const shown = view.board.devices.filter(matches);
  $("#test-devices").replaceChildren(...shown.map(card));
  $("#test-empty").hidden = view.board.devices.length > 0;
}

// Only the status lines change each second: the cards (and a picker in use) are left alone.
function tick() {
  if (!view.board) return;
  for (const device of view.board.devices) {
    const node = document.querySelector(`.test-card[data-device="${CSS.escape(device.device_id)}"]`);
    if (!node) continue;
    const state = stateOf(device);
    if (node.dataset.state !== state) { render(); return; }
    node.querySelector(".test-status").textContent = statusText(device, state);
  }
}

async function load() {
  view.board = await api("/api/duty/test-mode");
  render();
}

async function arm(device, minutes) {
  hideError();
  try {
    device.test_mode = await api(`/api/duty/test-mode/${encodeURIComponent(device.device_id)}`, { method: "PUT", body: { minutes } });
    view.received.delete(device.device_id);
    render();
  } catch (err) { showError(err); }
}

async function disarm(device) {
  hideError();
  try {
    await api(`/api/duty/test-mode/${encodeURIComponent(device.device_id)}`, { method: "DELETE" });
  } catch (err) {
    if (err.status !== 404) { showError(err); return; }
  }
  device.test_mode = null;
  render();
}

function onTestPress(frame) {
  const device = view.board?.devices.find((d) => d.device_id === frame.device_id);
  if (!device) return;
  view.received.set(device.device_id, frame.at);
  device.test_mode = null;
  device.last_test_at = frame.at;
  device.test_count = frame.test_count;
  render();
}

function setLink(state) {
  const node = $("#test-link");
  node.dataset.state = state;
  node.textContent = t(state === "live" ? "duty.page.live" : "duty.page.offline");
}

// A tester's page, not a console: `view=tests` keeps it from counting as the console being staffed.
function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/ws?view=tests`);
  ws.onmessage = (event) => {
    let msg = null;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (msg.type === "hello") { setLink("live"); load().catch(showError); }
    else if (msg.type === "device_test") onTestPress(msg);
  };
  ws.onclose = () => { setLink("offline"); setTimeout(connect, 3000); };
}

async function main() {
  await startPage({ heading: "duty.page.title", onLanguage: () => { render(); setLink($("#test-link").dataset.state); } });
  $("#test-find").addEventListener("input", (event) => { view.find = event.target.value; render(); });
  await load();
  connect();
  setInterval(tick, 1000);
}

main().catch(showError);
