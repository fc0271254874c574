"""Escalation policies, rotas and channel settings, validated at start-up.

A policy is an ordered list of tiers; each tier names whom to reach (fixed responders, a role, the
role's members on duty, a webhook), through which channels, and how long to wait for an acknowledgement
before the next tier. The first policy whose `match` fits the incident applies; the built-in defaults
follow alarm-receiving centres' targets (first contact at once, next tier within 60 s for critical alarms).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from common.settings import Language, LocalTime, StrictModel
from gateway.escalation.model import ChannelKind

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Shift(StrictModel):
    """A responder is on duty on these weekdays between start and end (site-local; may cross midnight)."""

    days: tuple[Weekday, ...] = WEEKDAYS
    start: LocalTime
    end: LocalTime
    #: Limit the shift to one wing of the site (carers on duty "in this wing").
    wing: str | None = None

    def covers(self, local: datetime) -> bool:
        day = WEEKDAYS[local.weekday()]
        previous_day = WEEKDAYS[(local.weekday() - 1) % 7]
        now = local.time()
        if self.start <= self.end:
            return day in self.days and self.start <= now < self.end
        # Crossing midnight: the part after midnight belongs to the shift that started the day before.
        return (day in self.days and now >= self.start) or (previous_day in self.days and now < self.end)


class Target(StrictModel):
    """Whom a tier reaches: exactly one of responder, role or webhook."""

    responder: str | None = None
    role: str | None = None
    #: With `role`: only members on duty now (by their shifts); members without shifts count as on duty.
    on_duty: bool = True
    #: With `role`: only members whose shift covers the incident's wing.
    same_wing: bool = False
    webhook: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if sum(x is not None for x in (self.responder, self.role, self.webhook)) != 1:
            raise ValueError("a target names exactly one of responder, role or webhook")
        return self


class Tier(StrictModel):
    targets: tuple[Target, ...] = Field(min_length=1)
    channels: tuple[ChannelKind, ...] = (ChannelKind.SMS,)
    #: Wait this long for an acknowledgement before moving to the next tier.
    wait_s: int = Field(60, ge=5, le=24 * 3600)


class PolicyMatch(StrictModel):
    severities: tuple[Literal["critical", "high", "medium", "low"], ...] = ()
    rules: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()

    def fits(self, severity: str, rule: str, site: str) -> bool:
        return (
            (not self.severities or severity in self.severities)
            and (not self.rules or rule in self.rules)
            and (not self.sites or site in self.sites)
        )


class Policy(StrictModel):
    id: str
    match: PolicyMatch = PolicyMatch()
    tiers: tuple[Tier, ...] = Field(min_length=1)
    #: After the last tier: repeat the last tier, start over from the first, or stop (and say so).
    repeat: Literal["last", "restart", "stop"] = "last"
    #: Quieter re-notification: from the second pass on, wait this long between steps instead of the
    #: tiers' own waits (None keeps them).
    renotify_s: int | None = Field(None, ge=30, le=24 * 3600)


class TwilioConfig(StrictModel):
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    auth_token_env: str = "TWILIO_AUTH_TOKEN"
    from_number: str
    #: Only for tests and labs: where the Twilio REST API is (a local stand-in); production leaves it unset.
    api_base_url: str | None = None
    timeout_s: float = Field(10, gt=0, le=60)
    #: How long a call rings before Twilio reports no-answer (Twilio accepts 5 to 600 s).
    ring_timeout_s: int = Field(30, ge=5, le=600)
    #: `<Say voice=...>` per language, e.g. {"zh-CN": "Polly.Zhiyu"} where the account's default voice
    #: cannot speak Mandarin (docs/twilio.md).
    voices: dict[Language, str] = Field(default_factory=dict)


class SmtpConfig(StrictModel):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    from_address: str
    timeout_s: float = Field(10, gt=0, le=120)


class WebhookConfig(StrictModel):
    url: str
    secret_env: str
    timeout_s: float = Field(10, gt=0, le=60)


class EscalationConfig(StrictModel):
    enabled: bool = True
    #: Where responders' phones and Twilio reach this gateway (webhooks, acknowledge links).
    public_url: str = "http://127.0.0.1:8080"
    twilio: TwilioConfig | None = None
    smtp: SmtpConfig | None = None
    webhooks: dict[str, WebhookConfig] = Field(default_factory=dict)
    policies: tuple[Policy, ...] = ()
    #: One incident contacts one responder through one channel at most this often.
    min_interval_per_responder_s: int = Field(30, ge=0, le=3600)
    send_attempts: int = Field(3, ge=1, le=10)
    #: Consecutive failures after which a channel is reported as a technical alarm.
    channel_failure_alarm_after: int = Field(5, ge=1, le=1000)
    #: A notification whose attempt was under way when its instance died may have gone out. Its new
    #: owner waits this long for the provider's status callback (Twilio reports within seconds) before
    #: sending it again: told once if it went, told late rather than never if it did not.
    in_doubt_wait_s: float = Field(15.0, ge=0, le=600)

    def policy_for(self, severity: str, rule: str, site: str) -> Policy:
        for policy in (*self.policies, *DEFAULT_POLICIES):
            if policy.match.fits(severity, rule, site):
                return policy
        return DEFAULT_POLICIES[-1]


_SMS_VOICE = (ChannelKind.SMS, ChannelKind.VOICE)
DEFAULT_POLICIES: tuple[Policy, ...] = (
    # Nobody at the console: those who run the home must hear of it away from the console, by phone
    # (and e-mail for a manager without one), every 10 minutes until somebody signs in (docs/duty.md).
    Policy(
        id="default-console-unstaffed",
        match=PolicyMatch(rules=("console_unstaffed",)),
        tiers=(
            Tier(
                targets=(Target(role="supervisor", on_duty=False), Target(role="manager", on_duty=False)),
                channels=(*_SMS_VOICE, ChannelKind.EMAIL),
                wait_s=600,
            ),
        ),
        repeat="last",
    ),
    # The daily reassurance call (gateway/reassurance): "I need help" is urgent (the carers on duty by
    # SMS and call at once, then the coordinator, then family); no answer after the retries goes to the
    # carers on duty and the coordinator by SMS, then by call.
    Policy(
        id="default-reassurance-help",
        match=PolicyMatch(rules=("reassurance_help",)),
        tiers=(
            Tier(targets=(Target(role="carer"),), channels=_SMS_VOICE, wait_s=60),
            Tier(
                targets=(Target(role="coordinator", on_duty=False), Target(role="supervisor", on_duty=False)),
                channels=_SMS_VOICE,
                wait_s=120,
            ),
            Tier(targets=(Target(role="family", on_duty=False),), channels=_SMS_VOICE, wait_s=120),
        ),
        repeat="restart",
    ),
    Policy(
        id="default-reassurance-no-answer",
        match=PolicyMatch(rules=("reassurance_no_answer",)),
        tiers=(
            Tier(
                targets=(Target(role="carer"), Target(role="coordinator", on_duty=False)),
                channels=(ChannelKind.SMS,),
                wait_s=600,
            ),
            Tier(
                targets=(Target(role="coordinator", on_duty=False), Target(role="supervisor", on_duty=False)),
                channels=_SMS_VOICE,
                wait_s=900,
            ),
        ),
        repeat="last",
    ),
    # The risk rules' own (docs/risks.md): a repositioning task is the wing's carer's round, told
    # gently; a fever cluster is the managers' to act on, not the night carer's.
    Policy(
        id="default-repositioning",
        match=PolicyMatch(rules=("repositioning_due",)),
        tiers=(
            Tier(targets=(Target(role="carer", same_wing=True),), channels=(ChannelKind.SMS,), wait_s=900),
            Tier(targets=(Target(role="carer"),), channels=(ChannelKind.SMS,), wait_s=1800),
        ),
        repeat="stop",
    ),
    Policy(
        id="default-fever-cluster",
        match=PolicyMatch(rules=("fever_cluster",)),
        tiers=(
            Tier(
                targets=(Target(role="manager", on_duty=False), Target(role="supervisor", on_duty=False)),
                channels=(ChannelKind.SMS, ChannelKind.EMAIL),
                wait_s=1800,
            ),
            Tier(targets=(Target(role="nurse"),), channels=(ChannelKind.SMS,), wait_s=3600),
        ),
        repeat="stop",
    ),
    # A missed home visit is the coordinator's to sort out (call the elder, send someone), not the
    # carer's who missed it: the coordinator first, then the supervisor (docs/visits.md).
    Policy(
        id="default-visit-missed",
        match=PolicyMatch(rules=("visit_missed",)),
        tiers=(
            Tier(targets=(Target(role="coordinator", on_duty=False),), channels=_SMS_VOICE, wait_s=300),
            Tier(targets=(Target(role="supervisor", on_duty=False),), channels=_SMS_VOICE, wait_s=600),
        ),
        repeat="last",
    ),
    Policy(
        id="default-critical",
        match=PolicyMatch(severities=("critical",)),
        tiers=(
            Tier(targets=(Target(role="carer", same_wing=True),), channels=_SMS_VOICE, wait_s=60),
            Tier(targets=(Target(role="carer"), Target(role="nurse")), channels=_SMS_VOICE, wait_s=60),
            Tier(targets=(Target(role="supervisor", on_duty=False),), channels=_SMS_VOICE, wait_s=60),
            Tier(targets=(Target(role="family", on_duty=False),), channels=_SMS_VOICE, wait_s=120),
        ),
        repeat="restart",
    ),
    Policy(
        id="default-high",
        match=PolicyMatch(severities=("high",)),
        tiers=(
            Tier(targets=(Target(role="carer", same_wing=True),), channels=_SMS_VOICE, wait_s=120),
            Tier(targets=(Target(role="supervisor", on_duty=False),), channels=_SMS_VOICE, wait_s=180),
        ),
        repeat="last",
    ),
    Policy(
        id="default-other",
        tiers=(
            Tier(targets=(Target(role="carer"),), channels=(ChannelKind.SMS,), wait_s=600),
            Tier(
                targets=(Target(role="supervisor", on_duty=False),),
                channels=(ChannelKind.SMS, ChannelKind.EMAIL),
                wait_s=1800,
            ),
        ),
        repeat="stop",
    ),
)
