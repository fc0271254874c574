"""Build the configured channels from their validated settings; secrets are read from the environment
here, once."""

from __future__ import annotations

from common.errors import ConfigError
from common.settings import secret_from_env
from gateway.escalation.channels.email import SmtpEmail
from gateway.escalation.channels.twilio_channels import TwilioAccount, TwilioSms, TwilioVoice
from gateway.escalation.channels.webhook import SignedWebhook
from gateway.escalation.config import EscalationConfig
from gateway.escalation.model import Channel, ChannelKind


def _required(env_name: str) -> str:
    value = secret_from_env(env_name)
    if not value:
        raise ConfigError(f"environment variable {env_name} is empty (it holds a secret)")
    return value


def twilio_auth_token(config: EscalationConfig) -> str | None:
    return _required(config.twilio.auth_token_env) if config.twilio else None


def build_channels(config: EscalationConfig) -> dict[ChannelKind, Channel]:
    channels: dict[ChannelKind, Channel] = {}
    if config.twilio is not None:
        account = TwilioAccount(
            account_sid=_required(config.twilio.account_sid_env),
            auth_token=_required(config.twilio.auth_token_env),
        )
        channels[ChannelKind.SMS] = TwilioSms(config.twilio, account, public_url=config.public_url)
        channels[ChannelKind.VOICE] = TwilioVoice(config.twilio, account, public_url=config.public_url)
    if config.smtp is not None:
        channels[ChannelKind.EMAIL] = SmtpEmail(
            config.smtp, public_url=config.public_url, password=secret_from_env(config.smtp.password_env)
        )
    return channels


def build_webhooks(config: EscalationConfig) -> dict[str, Channel]:
    return {
        name: SignedWebhook(hook, secret=_required(hook.secret_env), public_url=config.public_url)
        for name, hook in config.webhooks.items()
    }
