"""The broker's clients and roles kept in step with the directory, and credentials issued once.

The directory's commit never waits for the broker: a change only wakes the reconciler, which compares
the broker's managed clients and roles (`listClients`, `listRoles`, `getRole`) with what the directory
calls for and puts the difference right. A broker that cannot be reached is counted and logged, and the
next pass (woken by the next change, or every `reconcile_s`) tries again. Retiring a device deletes its
client, and the plugin disconnects whoever is logged in with it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.broker_identity.dynsec import BrokerAddress, Command, DynsecClient, DynsecError
from gateway.broker_identity.model import Acl, Identity, desired_identities, managed
from gateway.config import BrokerConfig, DeviceConfig

log = logging.getLogger(__name__)

#: 32 random bytes, URL-safe: typed by nobody (the installer scans the QR code or pastes it).
PASSWORD_BYTES = 32
DevicesSource = Callable[[], Awaitable[Iterable[DeviceConfig]]]


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class Reconciled:
    created: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


class BrokerIdentity:
    def __init__(self, client: DynsecClient, registry: CollectorRegistry | None = None) -> None:
        self._client = client
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.failures = Counter(
            "careline_broker_identity_failures",
            "Reconciles of the broker's device and hub logins that failed (broker away or refusing)",
            registry=registry,
        )
        self.in_step = Gauge(
            "careline_broker_identity_in_step",
            "1 when the broker's device and hub logins matched the directory at the last reconcile",
            registry=registry,
        )

    # -- reconciling ------------------------------------------------------------------------------------

    async def reconcile(self, devices: Iterable[DeviceConfig]) -> Reconciled:
        """Create, change and delete the managed clients and roles until they match `devices`. Three
        exchanges with the broker whatever the directory's size: list, read the roles, change."""
        desired = desired_identities(devices)
        async with self._lock:
            clients, roles = await self._present()
            kept = [identity.rolename for identity in desired.values() if identity.rolename in roles]
            present = await self._role_acls(kept)
            commands: list[Command] = []
            created: list[str] = []
            changed: list[str] = []
            for identity in desired.values():
                needed = _changes(identity, identity.username in clients, present.get(identity.rolename))
                if needed:
                    (changed if identity.username in clients else created).append(identity.username)
                commands += needed
            gone = sorted(name for name in clients | roles if managed(name) and name not in desired)
            commands += [{"command": "deleteClient", "username": n} for n in gone if n in clients]
            commands += [{"command": "deleteRole", "rolename": n} for n in gone if n in roles]
            await self._client.run(commands)
        if created or changed or gone:
            log.info("broker logins: created %s, changed %s, deleted %s", created, changed, gone)
        return Reconciled(tuple(created), tuple(changed), tuple(gone))

    async def _present(self) -> tuple[set[str], set[str]]:
        """The user names of the broker's clients and the names of its roles."""
        listing = {"verbose": False, "count": -1, "offset": 0}
        clients, roles = await self._client.run(
            [{"command": "listClients", **listing}, {"command": "listRoles", **listing}]
        )
        return set(_names(clients, "clients")), set(_names(roles, "roles"))

    async def _role_acls(self, rolenames: list[str]) -> dict[str, frozenset[Acl]]:
        answers = await self._client.run([{"command": "getRole", "rolename": name} for name in rolenames])
        return {
            name: frozenset(
                _acl(raw) for raw in ((answer.get("data") or {}).get("role") or {}).get("acls") or []
            )
            for name, answer in zip(rolenames, answers, strict=True)
        }

    # -- credentials ------------------------------------------------------------------------------------

    async def issue(self, identity: Identity) -> Credentials:
        """A new password for `identity` (its client made first if need be); the old one stops working
        and whoever is logged in with it is disconnected. The broker keeps only a salted hash."""
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        username = identity.username
        async with self._lock:
            clients, roles = await self._present()
            present = await self._role_acls([identity.rolename] if identity.rolename in roles else [])
            await self._client.run(
                [
                    *_changes(identity, username in clients, present.get(identity.rolename)),
                    {"command": "setClientPassword", "username": username, "password": password},
                    # Disabling kicks the sessions logged in with the old password; they must log in again.
                    {"command": "disableClient", "username": username},
                    {"command": "enableClient", "username": username},
                ]
            )
        return Credentials(username, password)

    # -- running ----------------------------------------------------------------------------------------

    def changed(self) -> None:
        """The directory changed: reconcile soon (never waits for the broker)."""
        self._wake.set()

    async def run(self, devices: DevicesSource, interval_s: float) -> None:
        """Reconcile at every change and every `interval_s`; failures are counted and tried again."""
        while True:
            self._wake.clear()
            await self.reconcile_once(devices)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval_s)

    async def reconcile_once(self, devices: DevicesSource) -> bool:
        try:
            await self.reconcile(await devices())
        except DynsecError as exc:
            self._failed()
            log.warning("broker logins not reconciled (tried again later): %s", exc)
            return False
        except Exception:
            # Whatever it was, the alarm path must not feel it: counted, logged, tried again.
            self._failed()
            log.exception("broker logins not reconciled (tried again later)")
            return False
        self.in_step.set(1)
        return True

    def _failed(self) -> None:
        self.failures.inc()
        self.in_step.set(0)


def broker_identity(broker: BrokerConfig, registry: CollectorRegistry | None) -> BrokerIdentity | None:
    """The gateway's provisioning, when `broker.identity` is enabled; it reaches the broker the way the
    gateway's own lanes do (same host, port and TLS settings), as the plugin's admin client."""
    settings = broker.identity
    if not settings.enabled:
        return None
    tls = broker.tls
    address = BrokerAddress(
        broker.host,
        broker.port,
        tls=broker.uses_tls,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        insecure=bool(tls and tls.insecure),
    )
    client = DynsecClient(address, settings.admin_username, settings.admin_password())
    return BrokerIdentity(client, registry)


def _changes(identity: Identity, has_client: bool, acls: frozenset[Acl] | None) -> list[Command]:
    """The commands that make the broker's client and role of `identity` what it should be; `acls` are
    its role's present ACLs (None: no role yet)."""
    rolename = identity.rolename
    commands: list[Command]
    if acls is None:
        wanted = [acl.as_json() for acl in sorted(identity.acls)]
        commands = [{"command": "createRole", "rolename": rolename, "acls": wanted}]
    else:
        commands = [
            {"command": "removeRoleACL", "rolename": rolename, "acltype": a.acltype, "topic": a.topic}
            for a in sorted(acls - identity.acls)
        ]
        commands += [
            {"command": "addRoleACL", "rolename": rolename, **a.as_json()}
            for a in sorted(identity.acls - acls)
        ]
    if not has_client:
        # No password yet: nobody can log in until the installer is given credentials.
        commands.append(
            {
                "command": "createClient",
                "username": identity.username,
                "textname": f"{identity.owner} {identity.id} ({identity.site})",
                "roles": [{"rolename": rolename, "priority": 0}],
            }
        )
    return commands


def _names(answer: dict[str, Any], key: str) -> list[str]:
    names = (answer.get("data") or {}).get(key) or []
    return [n if isinstance(n, str) else str(n.get("username") or n.get("rolename")) for n in names]


def _acl(raw: dict[str, Any]) -> Acl:
    return Acl(raw["acltype"], raw["topic"], bool(raw.get("allow")), int(raw.get("priority", 0)))
