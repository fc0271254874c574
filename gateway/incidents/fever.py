"""Body temperatures in the store, and the fever count of a site (epidemic early warning).

Each `TemperatureTaken` is kept; a fever is counted, in the same transaction, against the site's other
feverish residents of the window (rules/wellbeing/fever.py decides), so the count does not depend on
which source a reading came from, nor on the gateway having restarted in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.incidents.schema import BodyTemperature, Incident, IncidentStatus
from rules.model import AlarmDecision, TemperatureTaken
from rules.wellbeing.fever import CLUSTER_RULE, LastCluster, cluster_alarm

if TYPE_CHECKING:
    from gateway.incidents.store import IncidentStore

_ACTIVE = (IncidentStatus.OPEN.value, IncidentStatus.ACKNOWLEDGED.value)


def keep(session: Session, taken: TemperatureTaken) -> AlarmDecision | None:
    """Keep the reading; the cluster alarm it raises or joins, if any."""
    event = taken.event
    resident, celsius = event.resident, event.value
    if resident is None or isinstance(celsius, bool) or not isinstance(celsius, int | float):
        return None  # the rules send only a resident's numeric readings; nothing to count otherwise
    at = event.received_at
    before = feverish_residents(session, event.site, at - taken.window, at)
    session.add(
        BodyTemperature(
            site=event.site,
            resident=resident,
            celsius=float(celsius),
            fever=taken.fever,
            taken_at=at,
            source="manual" if event.extra.get("manual") is True else "wearable",
            recorded_by=taken.recorded_by[:200],
        )
    )
    if not taken.fever:
        return None
    now_feverish = sorted({*before, resident})
    return cluster_alarm(taken, now_feverish, resident not in before, _last_cluster(session, event.site))


def feverish_residents(session: Session, site: str, since: datetime, until: datetime) -> set[str]:
    found = session.scalars(
        select(BodyTemperature.resident)
        .where(
            BodyTemperature.site == site,
            BodyTemperature.fever.is_(True),
            BodyTemperature.taken_at > since,
            BodyTemperature.taken_at <= until,
        )
        .distinct()
    )
    return set(found)


def _last_cluster(session: Session, site: str) -> LastCluster | None:
    latest = session.scalar(
        select(Incident)
        .where(Incident.rule == CLUSTER_RULE, Incident.site == site)
        .order_by(Incident.opened_at.desc())
        .limit(1)
    )
    return None if latest is None else LastCluster(latest.opened_at, latest.status in _ACTIVE)


@dataclass(frozen=True, slots=True)
class FeverishResident:
    """One line of the managers' fever list."""

    resident: str
    site: str
    highest_celsius: float
    last_celsius: float
    last_taken_at: datetime
    last_source: str
    readings: int


def fever_list(
    session: Session, sites: set[str] | None, now: datetime, window: timedelta
) -> list[FeverishResident]:
    """Residents with a fever within `window` before `now`, the most recent first."""
    query = select(BodyTemperature).where(
        BodyTemperature.fever.is_(True),
        BodyTemperature.taken_at > now - window,
        BodyTemperature.taken_at <= now,
    )
    if sites is not None:
        query = query.where(BodyTemperature.site.in_(sites))
    rows = session.scalars(query.order_by(BodyTemperature.taken_at))
    found: dict[tuple[str, str], list[BodyTemperature]] = {}
    for row in rows:
        found.setdefault((row.site, row.resident), []).append(row)
    lines = [
        FeverishResident(
            resident,
            site,
            max(r.celsius for r in readings),
            readings[-1].celsius,
            readings[-1].taken_at,
            readings[-1].source,
            len(readings),
        )
        for (site, resident), readings in found.items()
    ]
    return sorted(lines, key=lambda line: line.last_taken_at, reverse=True)


def feverish_now(
    store: IncidentStore, sites: frozenset[str] | None, window: timedelta
) -> list[FeverishResident]:
    """The managers' fever list: run on the store's read pool."""
    with store.reading() as session:
        return fever_list(session, None if sites is None else set(sites), store.now(), window)
