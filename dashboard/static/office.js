// What the managers' office pages share: the period picker, the sites list, durations and shares in
// words, verdicts against the yardsticks (a symbol and words, never colour alone), tables of rows.
import { t, label } from "/static/i18n.js";
import { $, api, el } from "/static/page.js";

const DAY_MS = 86400000;

// A date input's value (browser-local) as the instant its day starts.
function dayStart(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d);
}

export function dateInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 10);
}

// [start, end) of the period chosen: a preset up to now, or whole days from #start to #end included.
export function chosenPeriod(preset) {
  const now = new Date();
  const days = { "7d": 7, "30d": 30, "12m": 365 }[preset];
  if (days) return { start: new Date(now.getTime() - days * DAY_MS), end: now };
  const start = dayStart($("#start").value);
  const end = new Date(dayStart($("#end").value).getTime() + DAY_MS);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) throw new Error(t("office.badDates"));
  return { start, end };
}

export function periodParams(preset) {
  const { start, end } = chosenPeriod(preset);
  return { start: start.toISOString(), end: end.toISOString() };
}

// The period picker: the custom dates show only for "custom"; they start as the last 30 days.
export function setUpPeriod(onChange = () => {}) {
  const picker = $("#period");
  const today = new Date();
  $("#start").value = dateInput(new Date(today.getTime() - 29 * DAY_MS));
  $("#end").value = dateInput(today);
  const toggle = () => {
    const custom = picker.value === "custom";
    for (const node of document.querySelectorAll(".custom-period")) node.hidden = !custom;
    onChange();
  };
  picker.addEventListener("change", toggle);
  toggle();
}

export async function loadSites() {
  try {
    const page = await api("/api/directory/sites?limit=500");
    return page.items || [];
  } catch {
    return [];
  }
}

export function fillSites(select, sites) {
  const keep = select.value;
  select.replaceChildren(el("option", { value: "", "data-i18n": "office.allSites", text: t("office.allSites") }),
    ...sites.map((s) => el("option", { value: s.id, text: s.name || s.id })));
  select.value = keep;
}

export function seconds(value) {
  if (value === null || value === undefined || value === "") return "—";
  const total = Number(value);
  if (total < 60) return t("office.seconds", { s: total.toFixed(total < 10 ? 1 : 0) });
  const m = Math.floor(total / 60);
  return t("office.minSec", { m, s: String(Math.round(total % 60)).padStart(2, "0") });
}

export function percent(share) {
  if (share === null || share === undefined || share === "") return "—";
  return `${(Number(share) * 100).toFixed(1)} %`;
}

// Met / not met in words with a symbol; no verdict without calls.
export function verdict(met) {
  if (met === null || met === undefined) return el("span", { class: "verdict none", text: `– ${t("office.noCalls")}` });
  return met
    ? el("span", { class: "verdict pass", "data-met": "true", text: `✔ ${t("office.met")}` })
    : el("span", { class: "verdict fail", "data-met": "false", text: `✘ ${t("office.notMet")}` });
}

// A table of rows: `columns` are [catalogue key, (row) => text or node].
export function fillTable(table, columns, rows) {
  const head = el("tr", {}, ...columns.map(([key]) => el("th", { scope: "col", "data-i18n": key, text: t(key) })));
  const body = rows.map((row) => el("tr", {}, ...columns.map(([, cell]) => {
    const value = cell(row);
    return el("td", {}, value instanceof Node ? value : String(value ?? "—"));
  })));
  table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
}

// The words for a report group's value: shifts and rules have names in the catalogue.
export function groupLabel(group, value, siteNames) {
  if (value === "" || value === null) return t("office.nobody");
  if (group === "rule") return label("rule", value);
  if (group === "shift") return label("office.shift", value);
  if (group === "site") return siteNames[value] || value;
  return value;
}
