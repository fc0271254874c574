// The simulated phones of responders and residents: what arrived on each number, live, with a reply box
// for each SMS and, for each call, "press 1", "press 2" and "do not answer". The stand-in posts the answers to the gateway, signed as Twilio would.
const POLL_MS = 1000;
let words = {};
let language = new URLSearchParams(location.search).get("lang")
  || (navigator.language.toLowerCase().startsWith("zh") ? "zh-CN" : "en");
let shown = "";

function t(id, params = {}) {
  const template = words[id] ?? id;
  return template.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? ""));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function loadWords() {
  const response = await fetch(`/phone/api/texts/${language}`);
  words = await response.json();
  document.documentElement.lang = language;
  document.title = t("phone.title");
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
}

function localTime(iso) {
  return new Date(iso).toLocaleString(language, { hour12: false });
}

function exchangeNode(x, kind) {
  const refused = x.http_status === null || x.http_status >= 400;
  if (x.action === "no-answer") return el("div", { class: "exchange" }, t("phone.not_answered"));
  const did = kind === "sms" ? t("phone.replied", { text: x.action }) : t("phone.pressed", { digit: x.action });
  const outcome = x.http_status === null ? t("phone.unreachable")
    : refused ? t("phone.refused", { status: x.http_status })
    : x.answer ? t("phone.answer", { text: x.answer }) : t("phone.delivered");
  return el("div", { class: refused ? "exchange refused" : "exchange" }, `${did} — ${outcome}`);
}

async function send(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(t("phone.failed", { status: response.status }));
  shown = "";
  await refresh();
}

function smsActions(entry) {
  const input = el("input", { name: "body", value: "1", "aria-label": t("phone.reply_label") });
  const form = el("form", {
    onsubmit: (event) => {
      event.preventDefault();
      if (input.value.trim()) act(() => send(`/phone/api/sms/${entry.id}/reply`, { body: input.value.trim() }));
    },
  }, input, el("button", { type: "submit" }, t("phone.reply_send")));
  return form;
}

function callActions(entry) {
  const actions = el("div", { class: "actions" });
  if (entry.can_press) {
    for (const [digit, label, kind] of [["1", "phone.press1", "press"], ["2", "phone.press2", "press2"]]) {
      actions.append(el("button", {
        type: "button", class: kind, "data-entry": String(entry.id), "data-digit": digit,
        onclick: () => act(() => send(`/phone/api/calls/${entry.id}/press`, { digit })),
      }, t(label)));
    }
  }
  if (entry.can_let_ring) {
    // Twilio reports no-answer after the ring timeout; here the visitor decides it at once.
    actions.append(el("button", {
      type: "button", class: "decline", "data-entry": String(entry.id),
      onclick: () => act(() => send(`/phone/api/calls/${entry.id}/no-answer`, {})),
    }, t("phone.no_answer")));
  }
  return actions;
}

async function act(work) {
  const error = document.getElementById("error");
  try {
    await work();
    error.hidden = true;
  } catch (exc) {
    error.textContent = exc.message;
    error.hidden = false;
  }
}

function entryNode(entry) {
  const kind = entry.kind === "sms" ? `✉ ${t("phone.sms")}` : `☎ ${t("phone.call")}`;
  const node = el("article", { class: `entry ${entry.kind}`, "data-kind": entry.kind, "data-id": String(entry.id) },
    el("div", { class: "kind" }, `${kind} · ${localTime(entry.at)} · ${t("phone.from", { number: entry.from })}`),
    el("div", { class: "text" }, entry.text));
  for (const x of entry.exchanges) node.append(exchangeNode(x, entry.kind));
  node.append(entry.kind === "sms" ? smsActions(entry) : callActions(entry));
  return node;
}

function phoneNode(phone) {
  const title = el("h2", {}, phone.name || t("phone.unknown_responder"));
  const node = el("section", { class: "phone", "data-number": phone.number }, title,
    el("div", { class: "number" }, phone.number));
  if (phone.entries.length === 0) node.append(el("p", { class: "empty" }, t("phone.empty")));
  for (const entry of phone.entries) node.append(entryNode(entry));
  return node;
}

async function refresh() {
  const response = await fetch("/phone/api/inbox");
  const text = await response.text();
  // Redraw only on change, so a reply being typed is not wiped by the next poll.
  if (text === shown || document.activeElement?.tagName === "INPUT") return;
  shown = text;
  const inbox = JSON.parse(text);
  document.getElementById("phones").replaceChildren(...inbox.phones.map(phoneNode));
}

async function poll() {
  await act(refresh);
  setTimeout(poll, POLL_MS);
}

document.getElementById("language").addEventListener("click", async () => {
  language = language === "zh-CN" ? "en" : "zh-CN";
  await loadWords();
  shown = "";
  await refresh();
});

await loadWords();
poll();
