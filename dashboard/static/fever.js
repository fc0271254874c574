// The epidemic early warning's office page (docs/risks.md): a carer's or nurse's thermometer reading
// entered for a resident (POST /api/residents/{id}/temperature), and the feverish residents of the
// manager's sites within the fever window (GET /api/office/fever).
import { t, label, formatTime } from "/static/i18n.js";
import { $, api, el, hideError, showError, startPage } from "/static/page.js";
import { fillTable } from "/static/office.js";

let listed = null;
let residents = [];

// Fever is said in words and with a mark, never by colour alone.
const celsius = (value) => `${value.toFixed(1)} °C`;
const COLUMNS = [
  ["risks.page.resident", (r) => r.resident_name],
  ["risks.page.room", (r) => r.room || "—"],
  ["risks.page.site", (r) => r.site_name],
  ["risks.page.highest", (r) => el("span", { class: "fever", text: `▲ ${celsius(r.highest_celsius)}` })],
  ["risks.page.last", (r) => celsius(r.last_celsius)],
  ["risks.page.when", (r) => formatTime(r.last_taken_at, { full: true })],
  ["risks.page.source", (r) => label("risks.source", r.last_source)],
  ["risks.page.readings", (r) => r.readings],
];

function render() {
  if (!listed) return;
  fillTable($("#fever-table"), COLUMNS, listed.residents);
  $("#fever-total").textContent = t("risks.page.total", { n: listed.residents.length, hours: listed.window_hours });
}

async function refresh() {
  listed = await api("/api/office/fever");
  render();
}

async function loadResidents() {
  const page = await api("/api/directory/residents?limit=500");
  residents = (page.items || []).filter((r) => (r.status || "active") === "active");
  $("#fever-resident").replaceChildren(
    ...residents.map((r) => el("option", { value: r.id, text: `${r.name} (${r.room || r.site})` })),
  );
}

async function record(event) {
  event.preventDefault();
  const resident = $("#fever-resident").value;
  const value = Number($("#fever-celsius").value);
  try {
    const done = await api(`/api/residents/${encodeURIComponent(resident)}/temperature`, {
      method: "POST", body: { celsius: value },
    });
    const name = residents.find((r) => r.id === resident)?.name || resident;
    const words = t(done.fever ? "risks.page.recordedFever" : "risks.page.recordedNormal", { name, value: celsius(done.celsius) });
    const status = $("#fever-recorded");
    status.replaceChildren(words);
    if (done.cluster_incident) {
      status.append(" ", el("a", { href: `/incident/${done.cluster_incident}`, text: t("risks.page.cluster", { id: done.cluster_incident }) }));
    }
    $("#fever-celsius").value = "";
    hideError();
    await refresh();
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "risks.page.title", onLanguage: render });
  $("#fever-form").addEventListener("submit", record);
  await Promise.all([loadResidents(), refresh()]);
  document.body.dataset.loaded = "true";
}

main().catch(showError);
