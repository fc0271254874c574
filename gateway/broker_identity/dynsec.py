"""A small client of Mosquitto's dynamic-security plugin: JSON commands on `$CONTROL/dynamic-security/v1`,
answers on `.../v1/response`, matched to their command by `correlationData`.

One connection per batch of commands: provisioning is rare (a directory change, a reconcile a minute),
and a connection that is never kept open cannot go stale.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTTv5

from common.errors import BrokerError

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
#: How long connecting may take, and then each control message until all its commands are answered (the
#: plugin rewrites its file after every change: a first reconcile of a thousand devices takes seconds).
COMMAND_TIMEOUT_S = 10.0
#: Commands per control message: a whole directory's worth stays within the broker's packet limit.
COMMANDS_PER_MESSAGE = 50

Command = dict[str, Any]


class DynsecError(BrokerError):
    """The plugin could not be reached, or it refused a command (`command` and its `error` say which)."""

    def __init__(self, message: str, *, command: str | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.error = error


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    #: A CA file to trust (None: the system's), or no TLS at all when `tls` is False.
    tls: bool = False
    ca_file: str | None = None
    insecure: bool = False


class DynsecClient:
    """Runs commands as the plugin's admin client; `DynsecError` when the broker is away or refuses."""

    def __init__(self, address: BrokerAddress, username: str, password: str | None) -> None:
        self._address = address
        self._username = username
        self._password = password

    async def run(self, commands: Sequence[Command]) -> list[dict[str, Any]]:
        """Every command's answer, in order; raises on the first one refused."""
        answers = await self.run_unchecked(commands)
        for answer in answers:
            if answer.get("error"):
                raise DynsecError(
                    f"dynamic security refused {answer.get('command')}: {answer['error']}",
                    command=str(answer.get("command")),
                    error=str(answer["error"]),
                )
        return answers

    async def run_unchecked(self, commands: Sequence[Command]) -> list[dict[str, Any]]:
        """Every command's answer, refusals included (each with its `error`)."""
        if not commands:
            return []
        tagged = [{**command, "correlationData": secrets.token_hex(8)} for command in commands]
        try:
            return await self._exchange(tagged)
        except TimeoutError:
            raise DynsecError("the broker's dynamic security did not answer in time") from None
        except aiomqtt.MqttError as exc:
            raise DynsecError(f"cannot reach the broker's dynamic security: {exc}") from None

    async def one(self, command: Command) -> dict[str, Any]:
        """The `data` of one command's answer (empty when it has none)."""
        answer = (await self.run([command]))[0]
        data: dict[str, Any] = answer.get("data") or {}
        return data

    async def _exchange(self, tagged: list[Command]) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        async with asyncio.timeout(COMMAND_TIMEOUT_S) as deadline, self._client() as client:
            await client.subscribe(RESPONSE_TOPIC, qos=1)
            for start in range(0, len(tagged), COMMANDS_PER_MESSAGE):
                # One message at a time, each with its own deadline: a long batch is slow, not stuck.
                deadline.reschedule(asyncio.get_running_loop().time() + COMMAND_TIMEOUT_S)
                answers += await _answered(client, tagged[start : start + COMMANDS_PER_MESSAGE])
        return answers

    def _client(self) -> aiomqtt.Client:
        address = self._address
        tls = None
        if address.tls:
            tls = aiomqtt.TLSParameters(ca_certs=address.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        return aiomqtt.Client(
            address.host,
            address.port,
            identifier=f"careline-dynsec-{secrets.token_hex(4)}",
            username=self._username,
            password=self._password,
            protocol=aiomqtt.ProtocolVersion(MQTTv5),
            tls_params=tls,
            tls_insecure=address.insecure if tls else None,
            timeout=COMMAND_TIMEOUT_S,
        )


async def _answered(client: aiomqtt.Client, batch: list[Command]) -> list[dict[str, Any]]:
    """Send one control message and wait for the answer to each of its commands, in their order."""
    wanted = {command["correlationData"]: n for n, command in enumerate(batch)}
    answers: list[dict[str, Any] | None] = [None] * len(batch)
    await client.publish(CONTROL_TOPIC, json.dumps({"commands": batch}), qos=1)
    async for message in client.messages:
        for answer in _responses(message.payload):
            n = wanted.get(str(answer.get("correlationData")))
            if n is not None:
                answers[n] = answer
        if all(answer is not None for answer in answers):
            return [answer for answer in answers if answer is not None]
    raise DynsecError("the broker closed the connection before answering")


def _responses(payload: Any) -> list[dict[str, Any]]:
    try:
        body = json.loads(payload if isinstance(payload, bytes | str) else bytes(payload))
    except (ValueError, TypeError):
        return []
    responses = body.get("responses") if isinstance(body, dict) else None
    return [r for r in responses if isinstance(r, dict)] if isinstance(responses, list) else []
