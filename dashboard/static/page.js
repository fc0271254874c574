// What every Careline page beyond the alarm queue shares: the signed-in user and their CSRF token, calls
// to the REST API with errors worded from the catalogue, and the header with the error banner under it:
// the page's heading, its navigation (only the pages the user's role may open; the server refuses the
// others anyway), the user's name and the language picker.
import {
  t, getLanguage, setLanguage, initialLanguage, rememberLanguage, translatePage,
} from "/static/i18n.js";

export const $ = (selector, root = document) => root.querySelector(selector);

export const session = { user: null, csrf: null };

// The header's pages, in order: [path, catalogue key, roles that may open it].
const MANAGERS = ["manager", "admin"];
const EVERYONE = ["operator", ...MANAGERS];
export const PAGES = [
  ["/", "admin.navQueue", EVERYONE],
  ["/handover", "nav.handover", EVERYONE],
  ["/test-button", "duty.nav", EVERYONE],
  ["/office/history", "nav.history", MANAGERS],
  ["/office/audit", "nav.audit", MANAGERS],
  ["/office/reports", "nav.reports", MANAGERS],
  ["/office/quality", "quality.title", MANAGERS],
  ["/office/devices", "nav.devices", MANAGERS],
  ["/office/scripts", "script.nav", MANAGERS],
  ["/office/reassurance", "reassurance.page.title", MANAGERS],
  ["/office/fever", "risks.nav", MANAGERS],
  ["/review", "review.title", MANAGERS],
  ["/admin", "admin.navAdmin", MANAGERS],
  ["/office/visits", "visits.nav", MANAGERS],
  ["/carer", "visits.navCarer", ["carer"]],
];

export class ApiError extends Error {
  constructor(status, detail) {
    super(`HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

function toSignIn() {
  const here = `${location.pathname}${location.search}`;
  location.assign(`/?next=${encodeURIComponent(here)}`);
}

// JSON in and out; `form` sends FormData as it is. A 401 sends the user to sign in and back here.
export async function api(path, { method = "GET", body, form } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", "X-Careline-Language": getLanguage() } };
  if (method !== "GET" && session.csrf) init.headers["X-CSRF-Token"] = session.csrf;
  if (form) init.body = form;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init).catch(() => { throw new ApiError(0, null); });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401) toSignIn();
  if (!res.ok) throw new ApiError(res.status, data?.detail ?? null);
  return data;
}

export function errorText(err) {
  if (!(err instanceof ApiError)) return String(err?.message ?? err);
  if (err.status === 0) return t("error.network");
  if (typeof err.detail === "string") return t("error.detail", { status: err.status, detail: err.detail });
  return t("error.http", { status: err.status });
}

// The banner startPage puts under the header: <div id="error-banner" role="alert"><span id="error-text">
// and <button id="error-dismiss">.
export function showError(err) {
  const banner = $("#error-banner");
  if (!banner) return;
  $("#error-text").textContent = errorText(err);
  banner.hidden = false;
}

export function hideError() {
  const banner = $("#error-banner");
  if (banner) banner.hidden = true;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// A file download of what the server sends (CSV exports), named as the server names it.
export function downloadLink(path, params) {
  const query = new URLSearchParams(params).toString();
  return query ? `${path}?${query}` : path;
}

function fillNav() {
  const nav = $("#nav");
  const role = session.user?.role;
  nav.replaceChildren(...PAGES.filter(([, , roles]) => roles.includes(role)).map(([href, key]) => {
    const current = href === location.pathname;
    return el("a", { href, "data-i18n": key, "aria-current": current ? "page" : null }, t(key));
  }));
}

// The language picker names each language in that language, whatever the page's language: these are
// not texts of the catalogue (tests/test_catalogue.py allows exactly these).
const LANGUAGE_NAMES = [["en", "English"], ["zh-CN", "简体中文"]];

// The header (the page's heading, <nav id="nav">, <span id="user">, <select id="lang">) and the error
// banner under it, at the top of <body>: the pages' HTML holds only their own <head> and <main>.
function buildHeader(heading, navClass) {
  const picker = el("select", { id: "lang" },
    ...LANGUAGE_NAMES.map(([lang, name]) => el("option", { value: lang, lang }, name)));
  const header = el("header", { class: "topbar" },
    el("h1", { "data-i18n": heading }, t(heading)),
    el("nav", { id: "nav", class: navClass }),
    el("span", { id: "user", class: "user" }),
    el("label", { class: "lang-picker" }, el("span", { "data-i18n": "language" }, t("language")), picker));
  const banner = el("div", { id: "error-banner", class: "error-banner", role: "alert", hidden: true },
    el("span", { id: "error-text" }),
    el("button", { id: "error-dismiss", type: "button", "data-i18n": "error.dismiss" }, t("error.dismiss")));
  document.body.prepend(header, banner);
  $("#error-dismiss").addEventListener("click", hideError);
}

// Builds the header and the banner, then signs the page in: `heading` is the catalogue key of the
// page's <h1>, `navClass` the class of its <nav>. `onLanguage` redraws what the page drew itself.
export async function startPage({ heading, navClass = "session", onLanguage = () => {} } = {}) {
  buildHeader(heading, navClass);
  const me = await api("/api/me");
  session.user = me;
  session.csrf = me.csrf_token;
  const apply = (lang) => {
    setLanguage(lang);
    translatePage();
    fillNav();
    $("#user").textContent = me.username;
    $("#lang").value = lang;
    onLanguage(lang);
  };
  apply(initialLanguage(me));
  $("#lang").addEventListener("change", (event) => {
    rememberLanguage(event.target.value, me.username);
    apply(event.target.value);
  });
  return me;
}
