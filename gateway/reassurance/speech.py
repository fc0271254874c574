"""What the resident hears or reads, in their first language, from the catalogue; and where Twilio
reports back. The call is TwiML `<Gather numDigits=1>` like the responders' calls."""

from __future__ import annotations

from typing import Final

from twilio.twiml.messaging_response import MessagingResponse  # type: ignore[import-untyped]
from twilio.twiml.voice_response import Gather, VoiceResponse  # type: ignore[import-untyped]

from gateway.catalogue import text
from gateway.escalation.channels.messages import normalize_language
from gateway.escalation.channels.twilio_channels import say_attributes
from gateway.reassurance.plan import Outcome

#: Seconds <Gather> waits for the key after each reading.
GATHER_WAIT_S: Final = 6
_PREFIX: Final = "/api/twilio/reassurance"


def gather_url(public_url: str, attempt_id: int) -> str:
    return f"{public_url.rstrip('/')}{_PREFIX}/gather?a={attempt_id}"


def call_status_url(public_url: str, attempt_id: int) -> str:
    return f"{public_url.rstrip('/')}{_PREFIX}/call-status?a={attempt_id}"


def sms_status_url(public_url: str, attempt_id: int) -> str:
    return f"{public_url.rstrip('/')}{_PREFIX}/sms-status?a={attempt_id}"


def call_twiml(name: str, language: str, action: str, voice: str | None) -> str:
    """The question, then once more shorter; no key: a goodbye (the call ends unanswered)."""
    lang = normalize_language(language)
    say = say_attributes(lang, voice)
    response = VoiceResponse()
    for words in (text("reassurance.call.question", lang, name=name), text("reassurance.call.again", lang)):
        gather = Gather(num_digits=1, action=action, method="POST", timeout=GATHER_WAIT_S)
        gather.say(words, **say)
        response.append(gather)
    response.say(text("reassurance.call.no_key", lang), **say)
    response.hangup()
    return str(response)


def gather_answer_twiml(outcome: Outcome | None, language: str, action: str, voice: str | None) -> str:
    """The gather webhook's answer: thanks (1) or help is coming (2), then hang up; another key: ask again."""
    lang = normalize_language(language)
    say = say_attributes(lang, voice)
    response = VoiceResponse()
    if outcome is None:
        gather = Gather(num_digits=1, action=action, method="POST", timeout=GATHER_WAIT_S)
        gather.say(text("reassurance.call.again", lang), **say)
        response.append(gather)
        response.say(text("reassurance.call.no_key", lang), **say)
    else:
        response.say(text(f"reassurance.call.{'help' if outcome == 'needs_help' else 'well'}", lang), **say)
    response.hangup()
    return str(response)


def sms_question(name: str, language: str) -> str:
    return text("reassurance.sms.question", normalize_language(language), name=name)


def sms_answer_twiml(outcome: Outcome | None, language: str) -> str:
    """The inbound-SMS webhook's answer: one SMS back to the resident."""
    lang = normalize_language(language)
    key = {"well": "well", "needs_help": "help"}.get(outcome or "", "again")
    response = MessagingResponse()
    response.message(text(f"reassurance.sms.{key}", lang))
    return str(response)
