"""Build the configured channels (secrets read from the environment here, once)."""

from __future__ import annotations

from common.errors import ConfigError
from common.settings import secret_from_env
from gateway.escalation.channels.email import SmtpConfig as SmtpSettings
from gateway.escalation.channels.email import SmtpEmail
from gateway.escalation.channels.twilio_channels import TwilioConfig as TwilioSettings
from gateway.escalation.channels.twilio_channels import TwilioSms, TwilioVoice
from gateway.escalation.channels.webhook import SignedWebhook
from gateway.escalation.channels.webhook import WebhookConfig as WebhookSettings
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
        twilio = TwilioSettings(
            account_sid=_required(config.twilio.account_sid_env),
            auth_token=_required(config.twilio.auth_token_env),
            from_number=config.twilio.from_number,
            public_base_url=config.public_url,
            api_base_url=config.twilio.api_base_url,
            timeout_s=config.twilio.timeout_s,
            ring_timeout_s=config.twilio.ring_timeout_s,
            voices=dict(config.twilio.voices),
        )
        channels[ChannelKind.SMS] = TwilioSms(twilio)
        channels[ChannelKind.VOICE] = TwilioVoice(twilio)
    if config.smtp is not None:
        smtp = config.smtp
        channels[ChannelKind.EMAIL] = SmtpEmail(
            SmtpSettings(
                host=smtp.host,
                port=smtp.port,
                from_address=smtp.from_address,
                public_base_url=config.public_url,
                username=smtp.username,
                password=secret_from_env(smtp.password_env),
                starttls=smtp.starttls,
                use_ssl=smtp.ssl,
                timeout_s=smtp.timeout_s,
            )
        )
    return channels


def build_webhooks(config: EscalationConfig) -> dict[str, Channel]:
    return {
        name: SignedWebhook(
            WebhookSettings(
                url=hook.url,
                secret=_required(hook.secret_env),
                public_base_url=config.public_url,
                timeout_s=hook.timeout_s,
            )
        )
        for name, hook in config.webhooks.items()
    }
