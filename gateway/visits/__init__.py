"""Planned home visits: plans in the directory (`ResidentConfig.visits`), each occurrence a row in the
incident store (`schema.Visit`), a scheduler that materialises them and raises one `visit_missed`
incident when a visit's due-by passes with no check-in (docs/visits.md)."""

from gateway.visits.schedule import CHECKLIST, CHECKLIST_ANSWERS, Occurrence, occurrences
from gateway.visits.scheduler import VisitScheduler
from gateway.visits.store import VisitError, VisitStore, VisitView

__all__ = [
    "CHECKLIST",
    "CHECKLIST_ANSWERS",
    "Occurrence",
    "VisitError",
    "VisitScheduler",
    "VisitStore",
    "VisitView",
    "occurrences",
]
