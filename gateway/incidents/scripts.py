"""Response scripts: what the operator does, step by step, for one alarm type at one site.

The script that applies to an incident is the site's own for its rule, else the one for every site,
else the built-in default of the catalogue (`script.default.<rule>.<n>`, numbered steps in every
language; rules without their own default use the technical one). Managers edit them; every change is
audited.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.settings import LANGUAGES
from gateway.catalogue import CATALOGUE
from gateway.incidents.schema import ResponseScript
from rules.categories import KNOWN_RULES

#: Each language's steps, in order.
Steps = dict[str, list[str]]
ScriptSource = Literal["site", "all_sites", "default"]
_DEFAULT_KEY = re.compile(r"script\.default\.(?P<rule>[a-z_]+)\.(?P<step>\d+)")
FALLBACK_RULE = "technical"


def _defaults() -> dict[str, Steps]:
    """The catalogue's default scripts, per rule, each language's steps in their numbered order."""
    numbered: dict[str, dict[int, str]] = {}
    for msgid in CATALOGUE.entries:
        found = _DEFAULT_KEY.fullmatch(msgid)
        if found:
            numbered.setdefault(found["rule"], {})[int(found["step"])] = msgid
    return {
        rule: {
            language: [CATALOGUE.text(steps[n], language) for n in sorted(steps)] for language in LANGUAGES
        }
        for rule, steps in numbered.items()
    }


DEFAULT_SCRIPTS: dict[str, Steps] = _defaults()


def default_steps(rule: str) -> Steps:
    return DEFAULT_SCRIPTS.get(rule) or DEFAULT_SCRIPTS[FALLBACK_RULE]


class ScriptView(BaseModel):
    rule: str
    #: None: every site.
    site: str | None
    steps: Steps
    updated_at: datetime | None
    updated_by: str | None
    #: Where the script came from: the site's own, the one for every site, or the built-in default.
    source: ScriptSource

    @classmethod
    def of(cls, row: ResponseScript) -> ScriptView:
        return cls(
            rule=row.rule,
            site=row.site,
            steps={language: list(row.steps.get(language, [])) for language in LANGUAGES},
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            source="all_sites" if row.site is None else "site",
        )

    @classmethod
    def default(cls, rule: str) -> ScriptView:
        return cls(
            rule=rule,
            site=None,
            steps=default_steps(rule),
            updated_at=None,
            updated_by=None,
            source="default",
        )


def script_row(session: Session, rule: str, site: str | None) -> ResponseScript | None:
    site_matches = ResponseScript.site.is_(None) if site is None else ResponseScript.site == site
    return session.scalar(select(ResponseScript).where(ResponseScript.rule == rule, site_matches).limit(1))


def applicable_script(session: Session, rule: str, site: str) -> ScriptView:
    """The site's script for the rule, else the one for every site, else the default."""
    for candidate in (site, None):
        row = script_row(session, rule, candidate)
        if row is not None:
            return ScriptView.of(row)
    return ScriptView.default(rule)


def all_scripts(session: Session) -> list[ScriptView]:
    """Every script managers have written, by rule then site (every site first)."""
    rows = session.scalars(select(ResponseScript)).all()
    return sorted(
        (ScriptView.of(row) for row in rows),
        key=lambda view: (view.rule, view.site is not None, view.site or ""),
    )


def is_known_rule(rule: str) -> bool:
    return rule in KNOWN_RULES
