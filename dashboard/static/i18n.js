// Careline operator page: translations and locale-aware formatting.
// Every string the page shows goes through t(key). Placeholders are written {name}.
// The texts come from the gateway's message catalogue (gateway/catalogue/messages.yaml), the same one
// its SMS, calls and e-mails use; the page keeps no table of its own.

export const LANGUAGES = ["en", "zh-CN"];
const CATALOGUE_RETRY_MS = 2000;

// Until the dictionary has arrived the page shows its built-in English and "Connecting to the gateway…";
// a gateway that cannot be reached yet is tried again, as the rest of the page does.
async function fetchCatalogue(lang) {
  for (;;) {
    try {
      const res = await fetch(`/api/catalogue/${encodeURIComponent(lang)}`, { credentials: "same-origin" });
      if (res.ok) return await res.json();
    } catch {
      // Network failure: wait and try again.
    }
    await new Promise((resolve) => setTimeout(resolve, CATALOGUE_RETRY_MS));
  }
}

// Both languages up front, so switching language is instant and works while the gateway is offline.
const DICT = Object.fromEntries(
  await Promise.all(LANGUAGES.map(async (lang) => [lang, await fetchCatalogue(lang)])),
);

const STORAGE_PREFIX = "careline.lang";
let current = "en";

export function normalizeLanguage(code) {
  const c = String(code || "").toLowerCase();
  if (c.startsWith("zh")) return "zh-CN";
  if (c.startsWith("en")) return "en";
  return null;
}

function browserLanguage() {
  for (const code of navigator.languages || [navigator.language]) {
    const lang = normalizeLanguage(code);
    if (lang) return lang;
  }
  return null;
}

// Each user's choice is kept under its own key: operators share workstations.
function storageKey(username) {
  return username ? `${STORAGE_PREFIX}:${username}` : STORAGE_PREFIX;
}

function readStored(username) {
  try {
    return normalizeLanguage(localStorage.getItem(storageKey(username)));
  } catch {
    return null;
  }
}

export function rememberLanguage(lang, username) {
  try {
    localStorage.setItem(storageKey(username), lang);
  } catch {
    // Storage may be disabled; the choice then lasts until the page reloads.
  }
}

// Order: the user's saved choice, then their account language, then the browser's language.
export function initialLanguage(user) {
  return readStored(user?.username) || normalizeLanguage(user?.language) || browserLanguage() || "en";
}

export function setLanguage(lang) {
  current = DICT[lang] ? lang : "en";
  document.documentElement.lang = current;
  return current;
}

export function getLanguage() {
  return current;
}

export function has(key) {
  return key in DICT[current] || key in DICT.en;
}

// The words for a code such as a rule, severity or status; an unknown code is shown as it is.
export function label(prefix, code) {
  return has(`${prefix}.${code}`) ? t(`${prefix}.${code}`) : String(code ?? "—");
}

export function t(key, vars = {}) {
  const text = DICT[current][key] ?? DICT.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// Fill every element marked data-i18n (text), data-i18n-title (tooltip) or data-i18n-aria-label.
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}

const pad = (n) => String(n).padStart(2, "0");

export function formatAge(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return t("age.dh", { d, hh: pad(h) });
  if (h) return t("age.hms", { h, mm: pad(m), ss: pad(sec) });
  if (m) return t("age.ms", { m, ss: pad(sec) });
  return t("age.s", { s: sec });
}

function locale() {
  if (current !== "en") return current;
  const nav = navigator.language || "";
  return nav.toLowerCase().startsWith("en") ? nav : "en-GB";
}

// The API sends UTC; a timestamp without a zone designator is read as UTC, not as local time.
export function parseUtc(iso) {
  const text = String(iso ?? "");
  const zoned = /(?:Z|[+-]\d\d:?\d\d)$/i.test(text) || !text.includes("T");
  return Date.parse(zoned ? text : `${text}Z`);
}

// Building an Intl.DateTimeFormat costs far more than using one: a queue of 500 alarms formats
// a thousand times per full render, so each (locale, with date or not) is built once.
const formats = new Map();

function dateFormat(withDate) {
  const key = `${locale()}|${withDate}`;
  let format = formats.get(key);
  if (!format) {
    const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
    if (withDate) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
    format = new Intl.DateTimeFormat(locale(), options);
    formats.set(key, format);
  }
  return format;
}

// Browser-local time, 24-hour clock; the date is added when it is not today.
export function formatTime(iso, { full = false } = {}) {
  const date = new Date(parseUtc(iso));
  if (Number.isNaN(date.getTime())) return "";
  const today = date.toDateString() === new Date().toDateString();
  return dateFormat(full || !today).format(date);
}
