"""Broker logins for installers: `POST /api/broker-identity/{devices|hubs}/{id}/credentials` for a native
device or a Zigbee2MQTT hub, and `GET /api/broker-identity/hubs`.

The password is made, set on the broker (which keeps only a salted hash) and shown in this one answer,
with the broker's address and a QR code for the device's set-up page; it is kept nowhere else. Issuing
again rotates it: the old one stops working and its sessions are disconnected. Every issuance is audited,
without the secret. Managers and admins only, within their sites.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import segno
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from dashboard.auth import Account
from dashboard.deps import Manager
from dashboard.openapi import CONFLICT, UNAVAILABLE
from gateway.broker_identity.dynsec import DynsecError
from gateway.broker_identity.model import Identity, Owner, desired_identities, hubs
from gateway.broker_identity.provisioning import BrokerIdentity, Credentials
from gateway.catalogue import normalize_language, text
from gateway.config import BrokerConfig, DeviceConfig
from gateway.directory.store import DirectoryStore
from gateway.incidents.service import IncidentService

ISSUED = "broker.credentials_issued"
#: Issuing refuses while broker identity is off or the device is retired (409), and while the broker
#: cannot take the login (503).
ISSUING = {**CONFLICT, **UNAVAILABLE}


class BrokerCredentials(BaseModel):
    kind: Owner
    id: str
    username: str
    password: str
    host: str
    port: int
    tls: bool
    #: `mqtts://username:password@host:port`, also what the QR code holds.
    url: str
    #: The QR code as an SVG data URL (an <img> may show it under the pages' CSP).
    qr_svg: str


class HubEntry(BaseModel):
    id: str
    sites: list[str]
    devices: list[str]
    username: str


def broker_credentials_router(
    identity: BrokerIdentity | None, broker: Callable[[], BrokerConfig]
) -> APIRouter:
    router = APIRouter(tags=["broker identity"])

    @router.get("/api/broker-identity/hubs")
    async def list_hubs(request: Request, account: Manager) -> list[HubEntry]:
        """The Zigbee2MQTT hubs the directory's active devices name (those of the user's sites)."""
        devices = await _devices(request)
        return [
            HubEntry(id=h.id, sites=list(h.sites), devices=list(h.devices), username=_username("hub", h.id))
            for h in hubs(devices)
            if _sees(account, h.sites)
        ]

    @router.post(
        "/api/broker-identity/devices/{device_id}/credentials",
        responses={200: {"model": BrokerCredentials}, **ISSUING},
    )
    async def issue_device(request: Request, device_id: str, account: Manager) -> JSONResponse:
        """A new broker login for a native device (its old one stops working)."""
        devices = await _devices(request)
        device = next((d for d in devices if d.id == device_id and _sees(account, (d.site,))), None)
        if device is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, _say(account, "broker_identity.no_device", id=device_id)
            )
        if not device.active or device.profile != "careline":
            reason = (
                "broker_identity.device_not_native" if device.active else "broker_identity.device_inactive"
            )
            raise HTTPException(status.HTTP_409_CONFLICT, _say(account, reason, id=device_id))
        return await _issue(request, account, _identity(devices, "device", device_id), (device.site,))

    @router.post(
        "/api/broker-identity/hubs/{hub_id}/credentials",
        responses={200: {"model": BrokerCredentials}, **ISSUING},
    )
    async def issue_hub(request: Request, hub_id: str, account: Manager) -> JSONResponse:
        """A new broker login for a Zigbee2MQTT hub (its old one stops working)."""
        devices = await _devices(request)
        hub = next((h for h in hubs(devices) if h.id == hub_id), None)
        if hub is None or not _sees(account, hub.sites):
            raise HTTPException(status.HTTP_404_NOT_FOUND, _say(account, "broker_identity.no_hub", id=hub_id))
        return await _issue(request, account, _identity(devices, "hub", hub_id), hub.sites)

    async def _issue(
        request: Request, account: Account, wanted: Identity, sites: tuple[str, ...]
    ) -> JSONResponse:
        if identity is None:
            raise HTTPException(status.HTTP_409_CONFLICT, _say(account, "broker_identity.disabled"))
        try:
            credentials = await identity.issue(wanted)
        except DynsecError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                _say(account, "broker_identity.unreachable", reason=str(exc)),
            ) from None
        ctx = request.app.state.careline
        await ctx.service.bookkeeping(_audit, ctx.directory, wanted, sites, f"user:{account.username}")
        shown = _shown(wanted, credentials, broker())
        # Shown once: no cache (browser or proxy) may keep the answer.
        return JSONResponse(shown.model_dump(), headers={"Cache-Control": "no-store"})

    return router


async def _devices(request: Request) -> tuple[DeviceConfig, ...]:
    ctx = request.app.state.careline
    service: IncidentService = ctx.service
    store: DirectoryStore = ctx.directory
    return (await service.read(store.load)).devices


def _identity(devices: tuple[DeviceConfig, ...], owner: Owner, entity_id: str) -> Identity:
    return desired_identities(devices)[_username(owner, entity_id)]


def _username(owner: Owner, entity_id: str) -> str:
    return Identity(owner, entity_id, "", frozenset()).username


def _sees(account: Account, sites: tuple[str, ...]) -> bool:
    return account.scope is None or all(site in account.scope for site in sites)


def _say(account: Account, key: str, **params: Any) -> str:
    return text(key, normalize_language(account.wording), **params)


def _audit(store: DirectoryStore, wanted: Identity, sites: tuple[str, ...], actor: str) -> None:
    """On the store's writer thread: who was given a login for what; never the password."""
    with store.incidents.transaction() as session:
        store.record(
            session,
            kind=wanted.owner,
            entity_id=wanted.id,
            actor=actor,
            action=ISSUED,
            details={
                "kind": wanted.owner,
                "id": wanted.id,
                "username": wanted.username,
                "sites": list(sites),
            },
        )


def _shown(wanted: Identity, credentials: Credentials, broker: BrokerConfig) -> BrokerCredentials:
    host, port, tls = device_address(broker)
    scheme = "mqtts" if tls else "mqtt"
    secret = f"{quote(credentials.username, safe='')}:{quote(credentials.password, safe='')}"
    url = f"{scheme}://{secret}@{host}:{port}"
    qr = segno.make(url, error="m").svg_data_uri(scale=4, border=2, dark="#000", light="#fff")
    return BrokerCredentials(
        kind=wanted.owner,
        id=wanted.id,
        username=credentials.username,
        password=credentials.password,
        host=host,
        port=port,
        tls=tls,
        url=url,
        qr_svg=qr,
    )


def device_address(broker: BrokerConfig) -> tuple[str, int, bool]:
    """Host, port and TLS as devices reach the broker: `broker.identity.device_url`, else the gateway's."""
    url = broker.identity.device_url
    if url is None:
        return broker.host, broker.port, broker.uses_tls
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    return parts.hostname or broker.host, parts.port or (8883 if tls else 1883), tls
