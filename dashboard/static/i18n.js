// Careline operator page: translations and locale-aware formatting.
// Every string the page shows goes through t(key). Placeholders are written {name}.

const DICT = {
  en: {
    "review.title": "Sensor log review",
    "review.measurement": "Reading",
    "review.resident": "Resident id",
    "review.device": "Device id",
    "review.from": "From",
    "review.to": "To",
    "review.every": "Aggregate",
    "review.raw": "raw readings",
    "review.show": "Show",
    "review.csv": "Export CSV",
    "review.alarms": "Alarms in this period",
    "review.noData": "No readings in this period.",
    "review.points": "{n} points",
    "review.back": "Alarm queue",
    "app.title": "Careline",
    "app.loading": "Connecting to the gateway…",
    "language": "Language",
    "logout": "Log out",
    "role.operator": "Operator",
    "role.manager": "Manager",
    "role.admin": "Administrator",
    "user": "{user} · {role}",
    "live.live": "Live",
    "live.offline": "Offline – reconnecting…",
    "live.title.live": "Alarms arrive in real time.",
    "live.title.offline": "No live connection to the gateway. The list may be out of date; it refreshes every 30 s.",
    "deadLetters": "Dead letters: {n}",
    "deadLetters.title": "Messages the gateway could not process. If this number is not 0, tell the technician on duty.",
    "login.title": "Operator sign-in",
    "login.username": "Username",
    "login.password": "Password",
    "login.submit": "Sign in",
    "login.bad": "Wrong username or password.",
    "login.expired": "Your session has ended. Please sign in again.",
    "queue.title": "Active incidents",
    "queue.caption": "Active incidents, most urgent first",
    "queue.empty": "No active incidents. All quiet.",
    "col.severity": "Severity",
    "col.rule": "Alarm type",
    "col.resident": "Resident",
    "col.place": "Site / room",
    "col.age": "Time since alarm",
    "col.triggers": "Triggers",
    "col.status": "Status",
    "col.actions": "Actions",
    "severity.critical": "Critical",
    "severity.high": "High",
    "severity.medium": "Medium",
    "severity.low": "Low",
    "rule.sos": "SOS call",
    "rule.fall": "Fall",
    "rule.door_night": "Door opened at night",
    "rule.door_left_open": "Door left open",
    "rule.smoke": "Smoke alarm",
    "rule.tamper": "Device tampered",
    "rule.battery_low": "Low battery",
    "rule.device_offline": "Device offline",
    "status.open": "Open",
    "status.acknowledged": "Acknowledged",
    "status.resolved": "Resolved",
    "ackBy": "by {user} at {time}",
    "escalation.progress": "Tier {tier}: {list}",
    "channel.sms": "SMS", "channel.voice": "call", "channel.email": "e-mail", "channel.webhook": "webhook",
    "delivery.queued": "queued", "delivery.sent": "sent", "delivery.delivered": "delivered",
    "delivery.failed": "failed", "delivery.retrying": "retrying", "delivery.ringing": "ringing",
    "delivery.initiated": "calling", "delivery.in-progress": "on the line", "delivery.completed": "call ended",
    "delivery.no-answer": "no answer", "delivery.busy": "busy", "delivery.undelivered": "undelivered",
    "delivery.canceled": "cancelled",
    "openedAt": "since {time}",
    "device": "Device {id}",
    "triggers.title": "Triggered {n} times",
    "faults": "Device data faulty ({n}); alarm kept",
    "faults.title": "The device's message had faults; the gateway raised the alarm anyway:\n{list}",
    "action.ack": "Acknowledge",
    "action.resolve": "Resolve",
    "resolve.title": "Resolve incident",
    "resolve.outcome": "Outcome",
    "resolve.choose": "— Choose an outcome —",
    "resolve.note": "Note (what happened, who was called)",
    "resolve.submit": "Resolve incident",
    "resolve.cancel": "Cancel",
    "resolve.needOutcome": "Choose an outcome first.",
    "resolve.needNote": "For “Other”, describe what happened in the note.",
    "resolve.gone": "This incident was resolved elsewhere.",
    "outcome.assisted_on_site": "Assisted on site",
    "outcome.emergency_services_called": "Emergency services called",
    "outcome.false_alarm": "False alarm",
    "outcome.cancelled_by_resident": "Cancelled by resident",
    "outcome.technical_fault": "Technical fault",
    "outcome.other": "Other (describe in the note)",
    "error.network": "Cannot reach the gateway. Check the network connection.",
    "error.http": "The request failed (HTTP {status}).",
    "error.detail": "The request failed (HTTP {status}): {detail}",
    "error.dismiss": "Dismiss",
    "age.s": "{s} s",
    "age.ms": "{m} min {ss} s",
    "age.hms": "{h} h {mm} min {ss} s",
    "age.dh": "{d} d {hh} h",
  },
  "zh-CN": {
    "review.title": "传感器记录查询",
    "review.measurement": "指标",
    "review.resident": "老人编号",
    "review.device": "设备编号",
    "review.from": "开始",
    "review.to": "结束",
    "review.every": "汇总",
    "review.raw": "原始读数",
    "review.show": "查询",
    "review.csv": "导出 CSV",
    "review.alarms": "该时段的警情",
    "review.noData": "该时段没有读数。",
    "review.points": "{n} 个数据点",
    "review.back": "警情队列",
    "app.title": "Careline 关爱呼叫",
    "app.loading": "正在连接网关…",
    "language": "语言",
    "logout": "退出登录",
    "role.operator": "接警员",
    "role.manager": "主管",
    "role.admin": "管理员",
    "user": "{user} · {role}",
    "live.live": "实时在线",
    "live.offline": "离线，正在重连…",
    "live.title.live": "报警实时推送中。",
    "live.title.offline": "与网关的实时连接已断开，列表可能不是最新的；每 30 秒自动刷新一次。",
    "deadLetters": "死信消息：{n}",
    "deadLetters.title": "网关无法处理的消息。如果数量不为 0，请通知值班技术人员。",
    "login.title": "接警员登录",
    "login.username": "用户名",
    "login.password": "密码",
    "login.submit": "登录",
    "login.bad": "用户名或密码错误。",
    "login.expired": "登录已过期，请重新登录。",
    "queue.title": "当前警情",
    "queue.caption": "当前警情，最紧急的排在最前",
    "queue.empty": "当前没有待处理的警情。",
    "col.severity": "级别",
    "col.rule": "报警类型",
    "col.resident": "老人",
    "col.place": "地点 / 房间",
    "col.age": "报警时长",
    "col.triggers": "触发次数",
    "col.status": "状态",
    "col.actions": "操作",
    "severity.critical": "危急",
    "severity.high": "高",
    "severity.medium": "中",
    "severity.low": "低",
    "rule.sos": "紧急呼叫",
    "rule.fall": "跌倒",
    "rule.door_night": "夜间出门",
    "rule.door_left_open": "门未关",
    "rule.smoke": "烟雾报警",
    "rule.tamper": "设备防拆报警",
    "rule.battery_low": "电量低",
    "rule.device_offline": "设备离线",
    "status.open": "待接警",
    "status.acknowledged": "已接警",
    "status.resolved": "已处置",
    "ackBy": "{user} 于 {time} 接警",
    "escalation.progress": "第 {tier} 级通知：{list}",
    "channel.sms": "短信", "channel.voice": "电话", "channel.email": "邮件", "channel.webhook": "平台推送",
    "delivery.queued": "排队中", "delivery.sent": "已发送", "delivery.delivered": "已送达",
    "delivery.failed": "发送失败", "delivery.retrying": "重试中", "delivery.ringing": "振铃中",
    "delivery.initiated": "呼叫中", "delivery.in-progress": "通话中", "delivery.completed": "通话结束",
    "delivery.no-answer": "无人接听", "delivery.busy": "忙线", "delivery.undelivered": "未送达",
    "delivery.canceled": "已取消",
    "openedAt": "{time} 起",
    "device": "设备 {id}",
    "triggers.title": "已触发 {n} 次",
    "faults": "设备数据有误（{n} 处），报警照常处理",
    "faults.title": "设备消息有误，网关仍已发出报警：\n{list}",
    "action.ack": "确认接警",
    "action.resolve": "处置完成",
    "resolve.title": "处置完成",
    "resolve.outcome": "处置结果",
    "resolve.choose": "— 请选择处置结果 —",
    "resolve.note": "备注（发生了什么、联系了谁）",
    "resolve.submit": "提交处置结果",
    "resolve.cancel": "取消",
    "resolve.needOutcome": "请先选择处置结果。",
    "resolve.needNote": "选择“其他”时，请在备注中说明情况。",
    "resolve.gone": "该警情已由他人处置完成。",
    "outcome.assisted_on_site": "已上门协助",
    "outcome.emergency_services_called": "已呼叫急救/消防/警方",
    "outcome.false_alarm": "误报",
    "outcome.cancelled_by_resident": "老人自行取消",
    "outcome.technical_fault": "设备故障",
    "outcome.other": "其他（请在备注中说明）",
    "error.network": "无法连接网关，请检查网络。",
    "error.http": "操作失败（HTTP {status}）。",
    "error.detail": "操作失败（HTTP {status}）：{detail}",
    "error.dismiss": "关闭",
    "age.s": "{s}秒",
    "age.ms": "{m}分{ss}秒",
    "age.hms": "{h}小时{mm}分{ss}秒",
    "age.dh": "{d}天{hh}小时",
  },
};

export const LANGUAGES = Object.keys(DICT);
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

export function t(key, vars = {}) {
  const text = DICT[current][key] ?? DICT.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// Fill every element marked data-i18n (text) or data-i18n-title (tooltip).
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
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

// Browser-local time, 24-hour clock; the date is added when it is not today.
export function formatTime(iso, { full = false } = {}) {
  const date = new Date(parseUtc(iso));
  if (Number.isNaN(date.getTime())) return "";
  const today = date.toDateString() === new Date().toDateString();
  const options = { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" };
  if (full || !today) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
  return new Intl.DateTimeFormat(locale(), options).format(date);
}
