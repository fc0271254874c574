"""Typed configuration, validated once at start-up.

Secrets never live in the file: a setting ending in ``_env`` names the environment variable that holds
the secret. `load_config` turns pydantic's errors into messages carrying the YAML line numbers.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from common.errors import ConfigError, InvalidInputError, Problem
from common.settings import Identifier, Language, LocalTime, StrictModel, secret_from_env
from devices.model import DeviceType
from gateway.catalogue import CATALOGUE
from gateway.escalation.config import EscalationConfig, Shift
from gateway.incidents.db import with_driver
from gateway.references import reference_problems
from gateway.reports.config import ReportsConfig
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


class BrokerIdentityConfig(StrictModel):
    """Per-device and per-hub logins on a Mosquitto broker with the dynamic-security plugin
    (docs/broker-identity.md): the gateway creates each device's and hub's client and role from the
    directory, with ACLs for exactly its own topics."""

    enabled: bool = False
    #: The dynamic-security admin client (may publish on ``$CONTROL/dynamic-security/#``).
    admin_username: str = "careline-admin"
    admin_password_env: str | None = None
    #: How often the broker's clients and roles are compared with the directory and put right.
    reconcile_s: float = Field(60.0, ge=1, le=24 * 3600)
    #: How devices reach the broker, shown with their credentials (defaults to the gateway's url).
    device_url: str | None = None

    @field_validator("device_url")
    @classmethod
    def _device_scheme(cls, url: str | None) -> str | None:
        if url is not None and (urlsplit(url).scheme not in ("mqtt", "mqtts") or not urlsplit(url).hostname):
            raise ValueError("device_url must look like mqtts://host:port")
        return url

    def admin_password(self) -> str | None:
        return secret_from_env(self.admin_password_env)


class BrokerConfig(StrictModel):
    #: ``mqtt://host:port`` or ``mqtts://host:port``. Leave empty to run the embedded amqtt broker.
    url: str | None = None
    embedded_port: int = Field(1883, ge=1, le=65535)
    client_id: Identifier = "careline-gateway"
    username: str | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    #: The alarm lane's MQTT version: 5 for Receive Maximum and the session's expiry.
    protocol: Literal["5", "3.1.1"] = "5"
    #: The telemetry lane's: it uses nothing of MQTT 5 (QoS 0, a clean session), and paho reads the
    #: properties of every MQTT 5 message into an object of their own, a tenth of its time per message.
    telemetry_protocol: Literal["5", "3.1.1"] = "3.1.1"
    #: How much lower the telemetry process's CPU priority is than the gateway's (Unix nice): when both
    #: want the CPU, the alarm lane gets it first and a telemetry flood waits, not an SOS.
    telemetry_nice: int = Field(5, ge=0, le=19)
    keepalive_s: int = Field(30, ge=5, le=3600)
    #: How long the broker keeps the alarm lane's session (and its queued alarms) while we are away.
    session_expiry_s: int = Field(7 * 24 * 3600, ge=60)
    alarm_topics: tuple[str, ...] = ("careline/+/+/alarm",)
    telemetry_topics: tuple[str, ...] = ("careline/+/+/telemetry", "zigbee2mqtt/#")
    reconnect_min_s: float = Field(0.2, gt=0, le=60)
    reconnect_max_s: float = Field(10.0, gt=0, le=600)
    #: Telemetry beyond this many queued messages is dropped (and counted); alarms are never dropped.
    telemetry_queue_max: int = Field(50_000, ge=100)
    #: Alarms are never dropped; they are held back instead. MQTT 5's Receive Maximum: the broker sends
    #: the alarm lane at most this many alarms it has not acknowledged (acknowledged after commit), and
    #: keeps the rest queued in the session, so a flood waits at the broker, not in the gateway's memory.
    alarm_receive_maximum: int = Field(100, ge=1, le=65535)
    #: Per-device and per-hub identities on the broker (off: the broker's own users and ACLs rule).
    identity: BrokerIdentityConfig = BrokerIdentityConfig()

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and urlsplit(url).scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError("broker url must start with mqtt:// or mqtts://")
        return url

    @model_validator(mode="after")
    def _identity_needs_a_broker(self) -> BrokerConfig:
        if self.identity.enabled and self.url is None:
            raise _refusal("broker_identity_needs_url")
        return self

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
    #: How long a writer waits for a lock before failing (another process may hold it): SQLite's busy
    #: timeout, PostgreSQL's lock_timeout.
    busy_timeout_s: float = Field(30.0, gt=0)
    #: Dead letters kept per lane; beyond it the oldest are deleted (and counted).
    dead_letters_max: int = Field(10_000, ge=100, le=10_000_000)
    #: Headroom for incidents: below this much free space on the store's filesystem (and the telemetry
    #: spool's), telemetry dead letters and the spool are refused (and counted); incidents go on.
    min_free_mb: float = Field(200.0, ge=0)

    @field_validator("url")
    @classmethod
    def _driver(cls, url: str) -> str:
        return with_driver(url)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * 1024 * 1024)

    #: Environment variable holding the Fernet key(s) that encrypt residents' key-safe codes at rest
    #: (comma-separated: the first encrypts, every one decrypts, for rotation). None: no codes are kept.
    directory_key_env: str | None = None
    #: How often the rules' state is saved to the store (and at a clean shutdown); docs/reliability.md.
    rule_state_every_s: float = Field(30.0, ge=1, le=600)
    #: A saved rule state older than this is ignored at start: after so long it says nothing true.
    rule_state_max_age_h: float = Field(24.0, gt=0, le=24 * 30)


class ClusterConfig(StrictModel):
    """Several gateway instances sharing one site's (or a city's) work (docs/scaling.md). Each instance is
    named by its `broker.client_id`; all share one PostgreSQL store."""

    #: The MQTT v5 shared-subscription group of the alarm lane (`$share/<group>/<topic>`): each alarm
    #: goes to one instance of the group. None: this gateway is alone and subscribes directly.
    share_group: Identifier | None = None
    #: How often an instance writes that it is alive (its row in `gateway_instances`).
    heartbeat_s: float = Field(2.0, gt=0, le=60)
    #: An instance silent this long is taken for dead: a live one adopts its broker session (the alarms
    #: the broker still holds for it) and its escalation work.
    peer_timeout_s: float = Field(10.0, gt=0, le=600)

    @model_validator(mode="after")
    def _heartbeat_within_timeout(self) -> ClusterConfig:
        if self.heartbeat_s * 2 > self.peer_timeout_s:
            raise ValueError("cluster.peer_timeout_s must be at least twice cluster.heartbeat_s")
        return self

    @property
    def shared(self) -> bool:
        return self.share_group is not None


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


def _refusal(code: str, **params: str | int) -> PydanticCustomError:
    """A validation error of ours: its type is the catalogue's `problem.<code>`, so a user reads it in their
    own language; the English text comes from the catalogue too (the configuration file's messages)."""
    return PydanticCustomError(code, CATALOGUE.entries[f"problem.{code}"]["en"], params)


def _e164(phone: str) -> str:
    compact = re.sub(r"[\s\-.()]", "", phone)
    if not re.fullmatch(r"\+[1-9]\d{6,14}", compact):
        raise _refusal("phone_not_e164", phone=repr(phone))
    return compact


#: E.164; spaces, dashes, dots and brackets are removed ("+86 138 0000 0001" → "+8613800000001"), so
#: SMS replies, which Twilio reports in E.164, are matched to the person.
Phone = Annotated[str, AfterValidator(_e164)]
#: A line of free text (a name, a relation, a model number).
Line = Annotated[str, Field(min_length=1, max_length=200)]
#: Free text for people: notes, addresses, directions.
Text = Annotated[str, Field(max_length=2000)]

Risk = Literal["falls", "wandering", "falling_from_bed", "pressure_sores", "choking", "scalds"]
#: The risk flags of GB/T 38600 (elderly care service quality): what carers must know before they go in.
RISKS: tuple[Risk, ...] = get_args(Risk)
SiteKind = Literal["care_home", "home", "district"]
DeviceState = Literal["active", "spare", "retired"]
ResidentStatus = Literal["active", "discharged"]


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


#: A list that keeps each value once, in the order first given.
Distinct = AfterValidator(_unique)


class RoomConfig(StrictModel):
    id: Identifier
    name: str | None = None
    wing: str | None = None


class WingConfig(StrictModel):
    """A part of a care home with its own carers on shift (rooms name it in `wing`)."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    name: str | None = None
    #: A locked dementia care zone: its `exits` (door sensors' device ids) raise an alarm whenever they
    #: open, at any hour, not only at night (docs/risks.md).
    locked_dementia_zone: bool = False
    exits: Annotated[tuple[Identifier, ...], Distinct] = ()


class DutyConfig(StrictModel):
    """A site's duties about its alarm devices and its console (docs/duty.md)."""

    #: An alarm button (pendant, pull cord, fall sensor) or smoke detector untested for longer is listed
    #: as overdue on the device board; JGJ/T 484 asks for a weekly test.
    test_interval_days: int = Field(7, ge=1, le=90)
    #: Nobody signed in to the console of this site for this long, while its alarms can come: an alarm
    #: to the supervisor and manager by SMS and call. 0 turns the watch off for the site.
    console_unstaffed_after_min: int = Field(5, ge=0, le=24 * 60)


class SiteConfig(StrictModel):
    id: Identifier
    name: str
    #: care_home: one building with rooms; home: one elder's (or couple's) home; district: a community
    #: service area whose elders live in their own homes.
    kind: SiteKind = "care_home"
    timezone: str = "Asia/Shanghai"
    address: Text | None = None
    #: How responders get in: the gate, the night bell, where to park (shown on the incident screen).
    access_notes: Text | None = None
    #: When given, every room's `wing` must be one of these.
    wings: tuple[WingConfig, ...] = ()
    rooms: tuple[RoomConfig, ...] = ()
    rules: RulesConfig = RulesConfig()
    #: Quiet-emergency rules on telemetry (inactivity, check-in, bed exit, vitals, device health, baseline).
    wellbeing: WellbeingConfig = WellbeingConfig()
    #: Tests and faults as duty: button tests due, an unstaffed console (docs/duty.md).
    duty: DutyConfig = DutyConfig()

    @field_validator("timezone")
    @classmethod
    def _real_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        # OSError: a name longer than the file system allows is looked up as a file all the same (the
        # fuzzer's find); it is as unknown as any other.
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise _refusal("unknown_time_zone", name=repr(name)) from None
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ContactConfig(StrictModel):
    """Family or another person to call about a resident; a resident's contacts are listed in the order
    to call them."""

    name: Line
    relation: Line | None = None
    phones: Annotated[tuple[Phone, ...], Distinct] = Field(min_length=1, max_length=5)
    languages: Annotated[tuple[Language, ...], Distinct] = Field(("zh-CN",), min_length=1)


class ReassuranceConfig(StrictModel):
    """The daily reassurance call (or SMS) to a resident living alone (docs/reassurance.md)."""

    #: The resident (or their legal representative) agreed to be called every day; without it, no call.
    consent: bool = False
    #: The resident's own phone, called or texted (E.164, like responders' phones).
    phone: Phone
    channel: Literal["voice", "sms"] = "voice"
    #: Site-local time of the day's first call.
    at: LocalTime
    #: Further calls when the first goes unanswered; after the last, an incident is opened.
    retries: int = Field(2, ge=0, le=5)
    #: Minutes from one call (or SMS) to the next when nobody answers.
    retry_wait_min: int = Field(15, ge=1, le=240)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: In Python's order (`date.weekday()`): Monday is 0.
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)


class VisitPlanConfig(StrictModel):
    """A planned home visit, repeated: who goes, on which days, when, and by when it must have begun
    (docs/visits.md). Either `weekdays` (weekly, e.g. every Tuesday) or `every_days` counted from
    `starting` (1: daily)."""

    id: Identifier
    #: The responder who goes, normally a carer covering the resident's site.
    carer: Identifier
    weekdays: Annotated[tuple[Weekday, ...], Distinct] = ()
    every_days: int | None = Field(None, ge=1, le=366)
    starting: date | None = None
    #: Site-local time the visit is planned to begin.
    at: LocalTime
    #: The carer must have checked in within this many minutes of `at`; after that it is missed.
    window_min: int = Field(60, ge=5, le=12 * 60)
    #: How long a visit usually takes (shown to the carer; not enforced).
    duration_min: int = Field(45, ge=5, le=8 * 60)

    @model_validator(mode="after")
    def _one_rhythm(self) -> VisitPlanConfig:
        if bool(self.weekdays) == (self.every_days is not None):
            raise _refusal("visit_plan_rhythm", plan=repr(self.id))
        if self.every_days is not None and self.starting is None:
            raise _refusal("visit_plan_starting", plan=repr(self.id))
        return self


class ResidentConfig(StrictModel):
    id: Identifier
    name: Line
    site: Identifier
    room: Identifier | None = None
    birth_year: int | None = None
    #: A photo for responders to recognise the resident by: a path on this gateway (the pages may load
    #: nothing from elsewhere), e.g. /static/photos/wang.jpg.
    photo_url: str | None = None
    #: The languages the resident speaks, the preferred one first.
    languages: Annotated[tuple[Language, ...], Distinct] = Field(("zh-CN",), min_length=1)
    #: Where responders go (a resident at home) and how they get in.
    address: Text | None = None
    access_notes: Text | None = None
    #: The code of the key safe at the door. Encrypted at rest; never exported in clear nor audited.
    key_safe_code: SecretStr | None = None
    conditions: Annotated[tuple[Line, ...], Distinct] = Field((), max_length=30)
    #: Care notes for carers: keep them short and useful in an emergency.
    notes: Text | None = None
    risks: Annotated[tuple[Risk, ...], Distinct] = ()
    #: The resident agreed to a daily check-in (the missed check-in rule).
    check_in_consent: bool = False
    contacts: tuple[ContactConfig, ...] = Field((), max_length=10)
    #: The daily reassurance call (docs/reassurance.md); None: no daily call.
    reassurance: ReassuranceConfig | None = None
    #: Planned home visits (gateway/visits, docs/visits.md).
    visits: tuple[VisitPlanConfig, ...] = Field((), max_length=20)
    status: ResidentStatus = "active"
    discharged_on: date | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_spellings(cls, data: Any) -> Any:
        # Files written before the richer resident keep working: `wandering_risk: true` is the risk flag
        # `wandering`, `language` the one language spoken.
        if not isinstance(data, dict) or not {"wandering_risk", "language"} & data.keys():
            return data
        data = dict(data)
        if data.pop("wandering_risk", False) is True:
            data["risks"] = (*data.get("risks", ()), "wandering")
        if "language" in data:
            if "languages" in data:
                raise _refusal("language_and_languages")
            data["languages"] = (data.pop("language"),)
        return data

    @field_validator("birth_year")
    @classmethod
    def _plausible_birth_year(cls, year: int | None) -> int | None:
        if year is not None and not 1880 <= year <= date.today().year:
            raise _refusal("birth_year_implausible", year=year)
        return year

    @field_validator("photo_url")
    @classmethod
    def _photo_on_this_gateway(cls, url: str | None) -> str | None:
        if url is not None and (
            not re.fullmatch(r"/[A-Za-z0-9._~/-]{1,300}\.(?:jpe?g|png|webp|svg)", url, re.IGNORECASE)
            or ".." in url
            or url.startswith("//")
        ):
            raise _refusal("photo_url_form", url=repr(url))
        return url

    @field_validator("key_safe_code")
    @classmethod
    def _key_safe_code(cls, code: SecretStr | None) -> SecretStr | None:
        # Either the code itself or, as exported, sealed with the directory key ("enc:<Fernet token>");
        # the directory store opens sealed codes before it compares or keeps them.
        value = code.get_secret_value() if code is not None else None
        if value is not None and not re.fullmatch(r"[0-9A-Za-z#*-]{1,16}|enc:[A-Za-z0-9_=-]{40,400}", value):
            raise _refusal("key_safe_code_form")
        return code

    @model_validator(mode="after")
    def _discharge_has_a_date(self) -> ResidentConfig:
        if (self.status == "discharged") != (self.discharged_on is not None):
            raise _refusal("discharge_date")
        return self

    @property
    def wandering_risk(self) -> bool:
        return "wandering" in self.risks

    @property
    def language(self) -> Language:
        return self.languages[0]

    @property
    def active(self) -> bool:
        return self.status == "active"


class DeviceConfig(StrictModel):
    id: Identifier
    type: DeviceType
    profile: Literal["careline", "zigbee2mqtt"] = "careline"
    site: Identifier
    room: Identifier | None = None
    resident: Identifier | None = None
    #: Zigbee2MQTT friendly name; defaults to the device id. Bounded so that its topics stay within
    #: `devices.decode.MAX_TOPIC_CHARS`.
    friendly_name: str | None = Field(None, max_length=256)
    #: The Zigbee2MQTT hub (a home's coordinator) this device is paired with: the hub's broker login
    #: may publish only its own devices' topics (docs/broker-identity.md). Zigbee2MQTT devices only.
    hub: Identifier | None = None
    model: Line | None = None
    vendor: Line | None = None
    installed_on: date | None = None
    #: Only active devices are bound (their messages are read); spares wait in the cupboard; retired
    #: devices are kept with their history.
    state: DeviceState = "active"

    @model_validator(mode="after")
    def _friendly_name_has_no_wildcards(self) -> DeviceConfig:
        name = self.friendly_name or ""
        if any(c in name for c in "+#") or name.startswith("/"):
            raise _refusal("friendly_name_wildcards")
        if self.hub is not None and self.profile != "zigbee2mqtt":
            raise _refusal("hub_needs_zigbee2mqtt", hub=repr(self.hub))
        return self

    @property
    def topic_name(self) -> str:
        """The Zigbee2MQTT friendly name its topics carry."""
        return self.friendly_name or self.id

    @property
    def active(self) -> bool:
        return self.state == "active"


class ResponderConfig(StrictModel):
    id: Identifier
    name: str
    phone: Phone | None = None
    email: str | None = None
    language: Language = "zh-CN"
    #: e.g. carer, nurse, supervisor, family: escalation tiers target roles.
    roles: tuple[str, ...] = ()
    #: Sites this responder covers; empty means every site.
    sites: tuple[Identifier, ...] = ()
    #: When this responder is on duty; none means always reachable (family, supervisors on call).
    shifts: tuple[Shift, ...] = ()


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
    #: The managers' response-time report: its shifts.
    reports: ReportsConfig = ReportsConfig()
    #: Several instances sharing the work (docs/scaling.md); off by default.
    cluster: ClusterConfig = ClusterConfig()
    _source: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> CarelineConfig:
        # parse_config asks for every problem at once, with line numbers; direct callers get the first.
        problems = reference_problems(self)
        if problems and not (info.context or {}).get("collect_references"):
            raise ValueError(problems[0].message)
        return self

    @model_validator(mode="after")
    def _cluster_shares_a_store_and_a_broker(self) -> CarelineConfig:
        # Instances share work through PostgreSQL's row locks and a broker's shared subscription; a
        # SQLite file or the embedded broker belongs to one machine.
        if self.cluster.shared and not self.storage.url.startswith("postgresql"):
            raise _refusal("cluster_needs_postgresql")
        if self.cluster.shared and self.broker.embedded:
            raise _refusal("cluster_needs_broker")
        return self

    @property
    def source(self) -> str | None:
        """The file this configuration was read from, if it was."""
        return self._source

    def site(self, site_id: str) -> SiteConfig:
        for site in self.sites:
            if site.id == site_id:
                return site
        raise KeyError(site_id)


def validated_copy(config: CarelineConfig, **sections: Any) -> CarelineConfig:
    """`config` with `sections` replaced, validated as a whole like a file; `InvalidInputError` lists every
    problem (ids that repeat, references that lead nowhere), located by section and position."""
    data = {**config.model_dump(mode="python"), **sections}
    try:
        updated = CarelineConfig.model_validate(data, context={"collect_references": True})
    except ValidationError as exc:
        raise _invalid_directory(problems_of(exc)) from None
    problems = reference_problems(updated)
    if problems:
        raise _invalid_directory(problems)
    updated._source = config.source
    return updated


def _invalid_directory(problems: list[Problem]) -> InvalidInputError:
    lines = [f"  {p.where()}: {p.message}" for p in problems]
    return InvalidInputError("invalid directory:\n" + "\n".join(lines), problems)


def problems_of(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[Problem]:
    """pydantic's errors as located problems: ours carry their catalogue code and parameters. An error
    about a list whose item failed ("at least 1 item") is left out: the item's own error says why."""
    errors = exc.errors()
    deeper = {tuple(error["loc"][:n]) for error in errors for n in range(len(error["loc"]))}
    return [
        Problem(
            (*prefix, *error["loc"]),
            error["type"],
            _message(error["msg"]),
            {k: v for k, v in error.get("ctx", {}).items() if isinstance(v, str | int)},
        )
        for error in errors
        if not (error["type"] == "too_short" and tuple(error["loc"]) in deeper)
    ]


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
    config = parse_config(text, source=str(path))
    config._source = str(path)
    return config


def parse_config(text: str, *, source: str = "<config>") -> CarelineConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}:{yaml_error_line(exc, text)}: not valid YAML: {exc}") from None
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
        lines = [_describe({"loc": p.loc, "msg": p.message}, root, source) for p in problems]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    return config


def _describe(error: Any, root: yaml.Node | None, source: str) -> str:
    loc = tuple(error["loc"])
    return f"  {source}:{line_of(root, loc)}: {_where(loc)}: {_message(error['msg'])}"


def yaml_error_line(exc: yaml.YAMLError, text: str) -> int:
    """The line (1-based) a YAML error points at. A character YAML refuses outright (a NUL, a DEL) is
    reported by its position only, which nobody finds in an editor."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int:
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
