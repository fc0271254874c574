"""Typed configuration, validated once at start-up.

Secrets never live in the file: a setting ending in ``_env`` names the environment variable that holds
the secret. `load_config` turns pydantic's errors into messages carrying the YAML line numbers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.errors import ConfigError
from common.settings import Identifier, Language, StrictModel, secret_from_env
from devices.model import DeviceType
from gateway.escalation.config import EscalationConfig, Shift
from gateway.telemetry.config import TelemetryConfig
from rules.settings import RulesConfig
from rules.wellbeing.config import WellbeingConfig

__all__ = ["CarelineConfig", "Identifier", "Language", "load_config", "parse_config", "secret_from_env"]


class TlsConfig(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Only for lab brokers with self-signed certificates; never in production.
    insecure: bool = False


class BrokerConfig(StrictModel):
    #: ``mqtt://host:port`` or ``mqtts://host:port``. Leave empty to run the embedded amqtt broker.
    url: str | None = None
    embedded_port: int = Field(1883, ge=1, le=65535)
    client_id: Identifier = "careline-gateway"
    username: str | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    keepalive_s: int = Field(30, ge=5, le=3600)
    #: How long the broker keeps the alarm lane's session (and its queued alarms) while we are away.
    session_expiry_s: int = Field(7 * 24 * 3600, ge=60)
    alarm_topics: tuple[str, ...] = ("careline/+/+/alarm",)
    telemetry_topics: tuple[str, ...] = ("careline/+/+/telemetry", "zigbee2mqtt/#")
    reconnect_min_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(10.0, gt=0, le=600)
    #: Telemetry beyond this many queued messages is dropped (and counted); alarms are never dropped.
    telemetry_queue_max: int = Field(50_000, ge=100)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("broker url must start with mqtt:// or mqtts://")
        return url

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1" if self.url else "127.0.0.1"

    @property
    def port(self) -> int:
        if self.url is None:
            return self.embedded_port
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme in ("mqtts", "ssl") else 1883)

    @property
    def uses_tls(self) -> bool:
        return self.tls is not None or (
            self.url is not None and urlsplit(self.url).scheme in ("mqtts", "ssl")
        )

    def password(self) -> str | None:
        return secret_from_env(self.password_env)


class StorageConfig(StrictModel):
    #: SQLAlchemy URL of the incident store: SQLite by default, PostgreSQL for several gateways.
    url: str = "sqlite:///var/careline.db"
    #: How long a writer waits for a SQLite lock before failing (another process may hold it).
    busy_timeout_s: float = Field(30.0, gt=0)
    #: Dead letters kept per lane; beyond it the oldest are deleted (and counted).
    dead_letters_max: int = Field(10_000, ge=100, le=10_000_000)
    #: Headroom for incidents: below this much free space on the store's filesystem (and the telemetry
    #: spool's), telemetry dead letters and the spool are refused (and counted); incidents go on.
    min_free_mb: float = Field(200.0, ge=0)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * 1024 * 1024)


class HttpConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: Session lifetime for logged-in operators.
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    #: Mark the session cookie Secure; turn on behind HTTPS.
    secure_cookies: bool = False
    #: Origins (``https://host[:port]``) besides the request's own whose pages may send state-changing
    #: requests with the session cookie, e.g. the public name of an HTTPS reverse proxy.
    trusted_origins: tuple[str, ...] = ()
    #: Serve the OpenAPI description and its interactive page (/docs, /openapi.json).
    api_docs: bool = False
    #: Serve Prometheus metrics at /metrics.
    metrics: bool = True
    #: Names the environment variable holding the bearer token that /metrics then requires.
    metrics_token_env: str | None = None
    #: Wrong passwords allowed per user name and per client address before each further one locks
    #: logins for them, 1 s at first, doubling up to `login_lock_max_s`.
    login_free_failures: int = Field(5, ge=1, le=100)
    login_lock_max_s: float = Field(300.0, ge=1, le=24 * 3600)
    #: /api/healthz says "degraded" while an alarm has waited longer than this to be committed.
    health_max_alarm_wait_s: float = Field(5.0, gt=0, le=3600)

    @field_validator("trusted_origins")
    @classmethod
    def _bare_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username
            ):
                raise ValueError(
                    f"trusted origin {origin!r} must look like https://host or https://host:port"
                )
        return origins

    def metrics_token(self) -> str | None:
        return secret_from_env(self.metrics_token_env)


class RoomConfig(StrictModel):
    id: Identifier
    name: str | None = None
    wing: str | None = None


class SiteConfig(StrictModel):
    id: Identifier
    name: str
    kind: Literal["care_home", "home"] = "care_home"
    timezone: str = "Asia/Shanghai"
    address: str | None = None
    rooms: tuple[RoomConfig, ...] = ()
    rules: RulesConfig = RulesConfig()
    #: Quiet-emergency rules on telemetry (inactivity, check-in, bed exit, vitals, device health, baseline).
    wellbeing: WellbeingConfig = WellbeingConfig()

    @field_validator("timezone")
    @classmethod
    def _real_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ResidentConfig(StrictModel):
    id: Identifier
    name: str
    site: Identifier
    room: Identifier | None = None
    wandering_risk: bool = False
    language: Language = "zh-CN"
    notes: str | None = None


class DeviceConfig(StrictModel):
    id: Identifier
    type: DeviceType
    profile: Literal["careline", "zigbee2mqtt"] = "careline"
    site: Identifier
    room: Identifier | None = None
    resident: Identifier | None = None
    #: Zigbee2MQTT friendly name; defaults to the device id.
    friendly_name: str | None = None

    @model_validator(mode="after")
    def _friendly_name_has_no_wildcards(self) -> DeviceConfig:
        name = self.friendly_name or ""
        if any(c in name for c in "+#") or name.startswith("/"):
            raise ValueError("friendly_name may not contain MQTT wildcards or start with '/'")
        return self


class ResponderConfig(StrictModel):
    id: Identifier
    name: str
    #: E.164; spaces, dashes, dots and brackets are removed ("+86 138 0000 0001" → "+8613800000001"), so
    #: SMS replies, which Twilio reports in E.164, are matched to the responder.
    phone: str | None = None
    email: str | None = None
    language: Language = "zh-CN"
    #: e.g. carer, nurse, supervisor, family: escalation tiers target roles.
    roles: tuple[str, ...] = ()
    #: Sites this responder covers; empty means every site.
    sites: tuple[Identifier, ...] = ()
    #: When this responder is on duty; none means always reachable (family, supervisors on call).
    shifts: tuple[Shift, ...] = ()

    @field_validator("phone")
    @classmethod
    def _e164(cls, phone: str | None) -> str | None:
        if phone is None:
            return None
        compact = re.sub(r"[\s\-.()]", "", phone)
        if not re.fullmatch(r"\+[1-9]\d{6,14}", compact):
            raise ValueError(f"phone {phone!r} is not an international number like +8613800000001")
        return compact


class CarelineConfig(StrictModel):
    broker: BrokerConfig = BrokerConfig()
    storage: StorageConfig = StorageConfig()
    http: HttpConfig = HttpConfig()
    sites: tuple[SiteConfig, ...] = ()
    residents: tuple[ResidentConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    responders: tuple[ResponderConfig, ...] = ()
    escalation: EscalationConfig = EscalationConfig()
    #: Where every reading and event is kept for review (InfluxDB 2.x or 1.x); off by default.
    telemetry: TelemetryConfig = TelemetryConfig()

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> CarelineConfig:
        # parse_config asks for every problem at once, with line numbers; direct callers get the first.
        problems = reference_problems(self)
        if problems and not (info.context or {}).get("collect_references"):
            raise ValueError(problems[0][1])
        return self

    def site(self, site_id: str) -> SiteConfig:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(site_id)


Problem = tuple[tuple[str | int, ...], str]


def reference_problems(config: CarelineConfig) -> list[Problem]:
    """Ids that repeat and references (site, room, resident) that lead nowhere, each with its location."""
    problems: list[Problem] = []
    for section in ("sites", "residents", "devices", "responders"):
        problems += _duplicates(section, [item.id for item in getattr(config, section)])
    rooms = {s.id: {r.id for r in s.rooms} for s in config.sites}
    residents = {r.id: r for r in config.residents}
    for n, resident in enumerate(config.residents):
        problems += _place_problems(
            ("residents", n), f"resident {resident.id!r}", resident.site, resident.room, rooms
        )
    for n, device in enumerate(config.devices):
        problems += _place_problems(("devices", n), f"device {device.id!r}", device.site, device.room, rooms)
        owner = residents.get(device.resident) if device.resident else None
        if device.resident and owner is None:
            problems.append(
                (
                    ("devices", n, "resident"),
                    f"device {device.id!r} names unknown resident {device.resident!r}",
                )
            )
        elif owner is not None and owner.site != device.site:
            problems.append(
                (
                    ("devices", n, "site"),
                    f"device {device.id!r} is at site {device.site!r} but its resident lives at "
                    f"{owner.site!r}",
                )
            )
    for n, responder in enumerate(config.responders):
        for k, site in enumerate(responder.sites):
            if site not in rooms:
                problems.append(
                    (("responders", n, "sites", k), f"responder {responder.id!r} names unknown site {site!r}")
                )
    problems += _escalation_problems(config)
    names = [(n, d.friendly_name or d.id) for n, d in enumerate(config.devices) if d.profile == "zigbee2mqtt"]
    seen: set[str] = set()
    for n, name in names:
        if name in seen:
            problems.append(
                (("devices", n, "friendly_name"), f"duplicate zigbee2mqtt friendly name {name!r}")
            )
        seen.add(name)
    return problems


def _escalation_problems(config: CarelineConfig) -> list[Problem]:
    responders = {r.id for r in config.responders}
    problems: list[Problem] = []
    for p, policy in enumerate(config.escalation.policies):
        for t, tier in enumerate(policy.tiers):
            for g, target in enumerate(tier.targets):
                loc: tuple[str | int, ...] = ("escalation", "policies", p, "tiers", t, "targets", g)
                if target.responder is not None and target.responder not in responders:
                    problems.append(
                        (
                            (*loc, "responder"),
                            f"policy {policy.id!r} names unknown responder {target.responder!r}",
                        )
                    )
                if target.webhook is not None and target.webhook not in config.escalation.webhooks:
                    problems.append(
                        ((*loc, "webhook"), f"policy {policy.id!r} names unknown webhook {target.webhook!r}")
                    )
    return problems


def _duplicates(section: str, ids: list[str]) -> list[Problem]:
    seen: set[str] = set()
    problems: list[Problem] = []
    for n, item in enumerate(ids):
        if item in seen:
            problems.append(((section, n, "id"), f"duplicate id {item!r} in {section}"))
        seen.add(item)
    return problems


def _place_problems(
    loc: tuple[str | int, ...], what: str, site: str, room: str | None, rooms: dict[str, set[str]]
) -> list[Problem]:
    if site not in rooms:
        return [((*loc, "site"), f"{what} names unknown site {site!r}")]
    if room is not None and room not in rooms[site]:
        return [((*loc, "room"), f"{what} names unknown room {room!r} of site {site!r}")]
    return []


def validated_copy(config: CarelineConfig, **sections: Any) -> CarelineConfig:
    """`config` with `sections` replaced, validated as a whole like a file; `ConfigError` lists every
    problem (ids that repeat, references that lead nowhere), located by section and position."""
    data = {**config.model_dump(mode="python"), **sections}
    try:
        updated = CarelineConfig.model_validate(data, context={"collect_references": True})
    except ValidationError as exc:
        lines = [f"  {_where(error['loc'])}: {_message(error['msg'])}" for error in exc.errors()]
        raise ConfigError("invalid directory:\n" + "\n".join(lines)) from None
    problems = reference_problems(updated)
    if problems:
        raise ConfigError(
            "invalid directory:\n" + "\n".join(f"  {_where(loc)}: {msg}" for loc, msg in problems)
        )
    return updated


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _message(msg: object) -> str:
    return str(msg).removeprefix("Value error, ")


def load_config(path: Path) -> CarelineConfig:
    """Read and validate a YAML config; errors name the file, line and setting at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> CarelineConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the top level must be a mapping of settings")
    try:
        config = CarelineConfig.model_validate(data, context={"collect_references": True})
    except ValidationError as exc:
        lines = [_describe(error, root, source) for error in exc.errors()]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
    problems = reference_problems(config)
    if problems:
        lines = [_describe({"loc": loc, "msg": message}, root, source) for loc, message in problems]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return config


def _describe(error: Any, root: yaml.Node | None, source: str) -> str:
    loc = tuple(error["loc"])
    return f"  {source}:{_line_of(root, loc)}: {_where(loc)}: {_message(error['msg'])}"


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """Line (1-based) of the deepest YAML node the error location reaches."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
