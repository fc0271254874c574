// Managers' editor of response scripts: what operators do, step by step, per alarm type and site.
// A site's own script applies first, then the one for every site, then the built-in default; the
// server checks roles (managers and admins), the site scope and the steps (1..20, 1..300 characters).
import { t, label, formatTime } from "/static/i18n.js";
import { $, api, el, showError, startPage } from "/static/page.js";

const state = { defaults: [], written: [], sites: [] };

const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);
const siteName = (id) => state.sites.find((site) => site.id === id)?.name ?? id;
const chosen = () => ({ rule: $("#rule").value, site: $("#site").value || null });
const writtenFor = (rule, site) => state.written.find((s) => s.rule === rule && s.site === site);

// What applies to the chosen alarm type and site, and why: its own, inherited, or the default.
function applying({ rule, site }) {
  const own = writtenFor(rule, site);
  if (own) return { script: own, source: "own" };
  const everywhere = site ? writtenFor(rule, null) : null;
  if (everywhere) return { script: everywhere, source: "inherited" };
  return { script: state.defaults.find((s) => s.rule === rule), source: "default" };
}

function fillChoices() {
  const keep = chosen();
  $("#rule").replaceChildren(...state.defaults.map(({ rule }) => el("option", { value: rule }, label("rule", rule))));
  $("#site").replaceChildren(
    el("option", { value: "" }, t("script.editor.everySite")),
    ...state.sites.map((site) => el("option", { value: site.id }, site.name)),
  );
  if (keep.rule) $("#rule").value = keep.rule;
  $("#site").value = keep.site ?? "";
}

function showChosen() {
  const { script, source } = applying(chosen());
  $("#steps-en").value = (script?.steps?.en ?? []).join("\n");
  $("#steps-zh").value = (script?.steps?.["zh-CN"] ?? []).join("\n");
  const where = $("#source");
  where.dataset.source = source === "own" ? (script.site ? "site" : "all_sites") : source === "inherited" ? "all_sites" : "default";
  const by = script?.updated_by ?? "";
  const at = script?.updated_at ? formatTime(script.updated_at) : "";
  where.textContent = source === "own" ? t("script.editor.source.own", { by, at })
    : source === "inherited" ? t("script.editor.source.inherited") : t("script.editor.source.default");
  $("#remove").disabled = source !== "own";
}

function steps(list) {
  return el("ol", {}, ...list.map((step) => el("li", {}, step)));
}

function renderWritten() {
  const body = $("#written tbody");
  if (!state.written.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "4" }, t("script.editor.none"))));
    return;
  }
  body.replaceChildren(...state.written.map((script) => el("tr", { "data-rule": script.rule, "data-site": script.site ?? "" },
    el("td", {}, label("rule", script.rule)),
    el("td", {}, script.site ? siteName(script.site) : t("script.editor.everySite")),
    el("td", {}, steps(script.steps[document.documentElement.lang === "zh-CN" ? "zh-CN" : "en"])),
    el("td", {}, `${formatTime(script.updated_at)} · ${script.updated_by}`))));
}

function render() {
  fillChoices();
  showChosen();
  renderWritten();
}

function notice(key) {
  const note = $("#notice");
  note.textContent = t(key);
  note.hidden = false;
}

async function reloadWritten() {
  state.written = await api("/api/response-scripts");
  showChosen();
  renderWritten();
}

function query(site) {
  return site ? `?${new URLSearchParams({ site })}` : "";
}

async function save(event) {
  event.preventDefault();
  const { rule, site } = chosen();
  const body = { steps: { en: lines($("#steps-en").value), "zh-CN": lines($("#steps-zh").value) } };
  try {
    await api(`/api/response-scripts/${encodeURIComponent(rule)}${query(site)}`, { method: "PUT", body });
    await reloadWritten();
    notice("script.editor.saved");
  } catch (err) {
    showError(err);
  }
}

async function remove() {
  const { rule, site } = chosen();
  try {
    await api(`/api/response-scripts/${encodeURIComponent(rule)}${query(site)}`, { method: "DELETE" });
    await reloadWritten();
    notice("script.editor.removed");
  } catch (err) {
    showError(err);
  }
}

async function main() {
  await startPage({ heading: "script.editor.title", onLanguage: () => { if (state.defaults.length) render(); } });
  try {
    const [defaults, written, sites] = await Promise.all([
      api("/api/response-scripts/defaults"),
      api("/api/response-scripts"),
      api("/api/directory/sites?limit=500"),
    ]);
    Object.assign(state, { defaults, written, sites: sites.items });
    render();
  } catch (err) {
    showError(err);
  }
  for (const id of ["#rule", "#site"]) $(id).addEventListener("change", () => { $("#notice").hidden = true; showChosen(); });
  $("#script-form").addEventListener("submit", save);
  $("#remove").addEventListener("click", remove);
}

main();
