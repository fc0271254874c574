"""The embedded MQTT broker (amqtt) for the one-command demo. Production uses Mosquitto or EMQX:
amqtt speaks MQTT 3.1.1 only and sustains a few thousand messages a second (FACTS.md)."""

from __future__ import annotations

import logging
from types import TracebackType

from amqtt.broker import Broker
from amqtt.errors import BrokerError as AmqttBrokerError

from common.errors import BrokerError

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )

    async def __aenter__(self) -> EmbeddedBroker:
        try:
            await self._broker.start()
        except AmqttBrokerError as exc:
            raise BrokerError(
                f"embedded MQTT broker cannot start on {self.host}:{self.port}: {exc}"
            ) from None
        log.info("embedded MQTT broker (amqtt) listening on %s:%d", self.host, self.port)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._broker.shutdown()
