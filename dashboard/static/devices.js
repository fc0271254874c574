// The managers' device board: summary tiles, the devices needing attention (most urgent first) and every
// device with filters, from /api/office/devices; refreshed every 30 s. Every state is written in words
// with a symbol beside it, never by colour alone.
import { t, label, formatTime, formatAge } from "/static/i18n.js";
import { $, api, el, hideError, showError, startPage, downloadLink } from "/static/page.js";

const REFRESH_MS = 30_000;
const TILE_FLAGS = ["offline", "battery_low", "test_overdue", "fault_over_2h"];
const FILTER_FLAGS = ["fault_over_2h", "offline", "battery_low", "test_overdue", "weak_signal", "never_heard"];
const TYPES = ["sos_button", "fall_sensor", "door_sensor", "smoke_detector", "presence_sensor",
  "motion_sensor", "vitals_monitor", "bed_sensor", "other"];
// What each flag looks like beside its words.
const SYMBOL = {
  fault_over_2h: "⚠", offline: "✖", silent: "✖", battery_low: "▼", test_overdue: "◷",
  weak_signal: "◔", never_heard: "?",
};
let shown = null; // the last answer, kept to redraw in another language
let sites = [];

function filters() {
  const params = {};
  for (const key of ["site", "type", "flag"]) {
    const value = $(`#filter-${key}`).value;
    if (value) params[key] = value;
  }
  return params;
}

function problems(row) {
  // A silent device is offline for another reason: it says so.
  return row.flags.map((flag) => {
    const key = flag === "offline" && row.offline_reason === "silent" ? "silent" : flag;
    return el("span", { class: "flag", "data-flag": key }, `${SYMBOL[key]} ${t(`board.flag.${key}`)}`);
  });
}

function statusCell(row) {
  const cell = el("td", { class: "status" });
  if (row.flags.length) cell.append(...problems(row));
  else cell.append(el("span", { class: "flag", "data-flag": "ok" }, `✓ ${t("board.ok")}`));
  return cell;
}

function where(row) {
  const parts = [row.site_name];
  if (row.room) parts.push(t("board.room", { room: row.room }));
  if (row.resident_name) parts.push(row.resident_name);
  return parts.join(" · ");
}

function deviceCell(row) {
  return el("td", {}, el("strong", { text: row.device_id }), el("br"),
    el("span", { class: "muted", text: label("device_type", row.type) }));
}

function faultFor(row) {
  if (row.fault_for_s === null) return "—";
  const text = formatAge(row.fault_for_s);
  return row.fault_over_2h ? `⚠ ${text}` : text;
}

function battery(row) {
  if (row.battery === null) return row.battery_low ? `▼ ${t("board.flag.battery_low")}` : "—";
  return `${row.battery_low ? "▼ " : ""}${Math.round(row.battery)} %`;
}

function signal(row) {
  if (row.link_quality === null) return "—";
  return `${row.weak_signal ? "◔ " : ""}${Math.round(row.link_quality)}`;
}

function lastTest(row) {
  if (!["sos_button", "smoke_detector"].includes(row.type) && !row.last_test_at) return "—";
  const text = row.last_test_at ? formatTime(row.last_test_at, { full: true }) : t("board.neverTested");
  return row.test_overdue ? `◷ ${text}` : text;
}

function rowOf(row, first) {
  return el("tr", { "data-device": row.device_id, "data-flags": row.flags.join(" ") },
    first(row), deviceCell(row), el("td", { text: where(row) }),
    el("td", { class: row.fault_over_2h ? "over" : null, text: faultFor(row) }),
    el("td", { text: battery(row) }), el("td", { text: signal(row) }),
    el("td", { text: row.last_seen ? formatTime(row.last_seen) : t("board.never") }),
    el("td", { text: lastTest(row) }));
}

function render() {
  if (!shown) return;
  $("#count-total").textContent = shown.summary.total;
  for (const flag of TILE_FLAGS) $(`#count-${flag}`).textContent = shown.summary[flag];
  for (const tile of document.querySelectorAll(".tile")) {
    const flag = tile.dataset.flag;
    tile.dataset.state = flag && shown.summary[flag] > 0 ? "alert" : "calm";
    tile.setAttribute("aria-pressed", String($("#filter-flag").value === flag));
  }
  const problemCell = (row) => el("td", { class: "status" }, ...problems(row));
  $("#attention tbody").replaceChildren(...shown.attention.map((row) => rowOf(row, problemCell)));
  $("#attention").hidden = !shown.attention.length;
  $("#attention-none").hidden = Boolean(shown.attention.length);
  $("#devices tbody").replaceChildren(...shown.devices.map((row) => rowOf(row, statusCell)));
  $("#devices-none").hidden = Boolean(shown.devices.length);
  $("#updated").textContent = t("board.updated", { time: formatTime(shown.generated_at) });
}

function fillFilters() {
  const keep = filters();
  const option = (value, text) => el("option", { value }, text);
  $("#filter-site").replaceChildren(option("", t("board.filter.any")),
    ...sites.map((s) => option(s.id, s.name)));
  $("#filter-type").replaceChildren(option("", t("board.filter.any")),
    ...TYPES.map((type) => option(type, label("device_type", type))));
  $("#filter-flag").replaceChildren(option("", t("board.filter.any")),
    ...FILTER_FLAGS.map((flag) => option(flag, `${SYMBOL[flag]} ${t(`board.flag.${flag}`)}`)));
  for (const [key, value] of Object.entries(keep)) $(`#filter-${key}`).value = value;
}

async function refresh() {
  const params = filters();
  $("#csv").href = downloadLink("/api/office/devices", { ...params, format: "csv" });
  try {
    shown = await api(downloadLink("/api/office/devices", params));
    hideError();
    render();
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "board.title", onLanguage: () => { fillFilters(); render(); } });
  const answer = await api("/api/directory/sites?limit=500").catch(() => ({ items: [] }));
  sites = answer.items;
  fillFilters();
  const url = new URLSearchParams(location.search);
  for (const key of ["site", "type", "flag"]) if (url.get(key)) $(`#filter-${key}`).value = url.get(key);
  $("#filters").addEventListener("change", refresh);
  $("#filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  for (const tile of document.querySelectorAll(".tile")) {
    tile.addEventListener("click", () => { $("#filter-flag").value = tile.dataset.flag; refresh(); });
  }
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

main().catch(showError);
