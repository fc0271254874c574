// The administration page's broker logins: a native device's or a Zigbee2MQTT hub's login is issued
// here and shown ONCE (password and QR code for the device's set-up page). The server makes the password,
// sets it on the broker and keeps it nowhere; issuing again replaces it, so the page asks first.
import { t } from "./i18n.js";
import { $, el } from "./page.js";

let deps = null;

export function wireLogins({ api, showError }) {
  deps = { api, showError };
  $("#login-device-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("#login-device").value.trim();
    if (id) issue("devices", id);
  });
}

export async function refreshLogins() {
  let hubs;
  try {
    hubs = await deps.api("/api/broker-identity/hubs");
  } catch (err) {
    deps.showError(err);
    return;
  }
  $("#no-hubs").hidden = hubs.length > 0;
  $("#login-hubs tbody").replaceChildren(...hubs.map(hubRow));
}

function hubRow(hub) {
  const button = el("button", { type: "button", class: "primary", text: t("broker_identity.page.issue") });
  button.addEventListener("click", () => issue("hubs", hub.id));
  return el("tr", { "data-hub": hub.id },
    el("td", {}, el("strong", { text: hub.id })),
    el("td", { text: hub.sites.join(", ") }),
    el("td", { text: hub.devices.join(", ") }),
    el("td", {}, el("code", { text: hub.username })),
    el("td", {}, button));
}

async function issue(kind, id) {
  if (!window.confirm(t("broker_identity.page.confirm", { id }))) return;
  try {
    const login = await deps.api(`/api/broker-identity/${kind}/${encodeURIComponent(id)}/credentials`, { method: "POST" });
    show(login);
  } catch (err) {
    deps.showError(err);
  }
}

function show(login) {
  const box = $("#login-issued");
  const field = (key, value) => el("div", { class: "login-field" },
    el("span", { class: "login-label", text: t(key) }), el("code", { class: "login-value", text: value }));
  const done = el("button", { type: "button", text: t("broker_identity.page.done") });
  // Forgotten when done: nothing of it stays on the page (the server never had it to give again).
  done.addEventListener("click", () => { box.replaceChildren(); box.hidden = true; });
  box.replaceChildren(
    el("h3", { text: t("broker_identity.page.issuedFor", { id: login.id }) }),
    el("p", { class: "login-once", text: t("broker_identity.page.once") }),
    el("div", { class: "login-body" },
      el("div", {},
        field("broker_identity.page.username", login.username),
        field("broker_identity.page.password", login.password),
        field("broker_identity.page.address", `${login.host}:${login.port}`),
        field("broker_identity.page.tls", login.tls ? t("broker_identity.page.tlsOn") : t("broker_identity.page.tlsOff"))),
      el("img", { class: "login-qr", src: login.qr_svg, alt: t("broker_identity.page.qr"), width: "240", height: "240" })),
    done);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}
