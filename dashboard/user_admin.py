"""Admins manage the dashboard's users: role, language, the sites each sees, disabled; every change is
audited (action `directory.user.added|changed`, the password never, only that it changed) in the same
transaction as the change itself."""

from __future__ import annotations

from typing import Any, Literal

from argon2 import PasswordHasher
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.errors import InvalidInputError, Problem
from dashboard.auth import Role
from gateway.directory.store import DirectoryStore
from gateway.incidents.schema import DirectorySite, User
from gateway.references import problem

MIN_PASSWORD = 10


class UserNotFoundError(LookupError):
    pass


class UserChange(BaseModel):
    """What an admin changes of a user; fields left out stay as they are."""

    role: Role | None = None
    language: Literal["en", "zh-CN"] | None = None
    #: The sites the user sees; empty for every site.
    sites: tuple[str, ...] | None = Field(None, max_length=200)
    disabled: bool | None = None
    password: SecretStr | None = None


def _shown(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role,
        "language": user.language,
        "sites": list(user.sites or ()),
        "disabled": user.disabled,
        "created_at": user.created_at.isoformat(),
    }


class UserAdmin:
    def __init__(self, directory: DirectoryStore) -> None:
        self._directory = directory
        self._incidents = directory.incidents
        self._hasher = PasswordHasher()

    def users(self) -> list[dict[str, Any]]:
        with self._incidents.reading() as session:
            return [_shown(user) for user in session.scalars(select(User).order_by(User.username))]

    def create(
        self,
        username: str,
        password: str,
        role: Role,
        language: str,
        sites: tuple[str, ...],
        *,
        actor: str,
    ) -> dict[str, Any]:
        """On the store's writer thread."""
        _check_password(password)
        with self._incidents.transaction() as session:
            _check_sites(session, sites)
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise ValueError(f"user {username!r} already exists")
            user = User(
                username=username,
                password_hash=self._hasher.hash(password),
                role=role.value,
                language=language,
                created_at=self._incidents.now(),
                disabled=False,
                sites=list(sites),
            )
            session.add(user)
            shown = _shown(user)
            after = {k: shown[k] for k in ("role", "language", "sites", "disabled")}
            self._directory.record(
                session,
                kind="user",
                entity_id=username,
                actor=actor,
                action="directory.user.added",
                details={"kind": "user", "id": username, "after": after},
            )
            return shown

    def update(self, username: str, change: UserChange, *, actor: str) -> dict[str, Any]:
        """On the store's writer thread."""
        if change.password is not None:
            _check_password(change.password.get_secret_value())
        with self._incidents.transaction() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None:
                raise UserNotFoundError(username)
            if change.sites is not None:
                _check_sites(session, change.sites)
            before = _shown(user)
            for name in ("role", "language", "disabled"):
                value = getattr(change, name)
                if value is not None:
                    setattr(user, name, value.value if isinstance(value, Role) else value)
            if change.sites is not None:
                user.sites = list(change.sites)
            if change.password is not None:
                user.password_hash = self._hasher.hash(change.password.get_secret_value())
            after = _shown(user)
            keys = [k for k in ("role", "language", "sites", "disabled") if before[k] != after[k]]
            details: dict[str, Any] = {
                "kind": "user",
                "id": username,
                "before": {k: before[k] for k in keys},
                "after": {k: after[k] for k in keys},
            }
            if change.password is not None:
                details["secrets"] = {"password": "changed"}
            if keys or change.password is not None:
                self._directory.record(
                    session,
                    kind="user",
                    entity_id=username,
                    actor=actor,
                    action="directory.user.changed",
                    details=details,
                )
            return after


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(
            "password too short", [problem(("password",), "password_too_short", n=MIN_PASSWORD)]
        )


def _check_sites(session: Session, sites: tuple[str, ...]) -> None:
    known = set(session.scalars(select(DirectorySite.id).where(DirectorySite.removed_at.is_(None))))
    problems: list[Problem] = [
        problem(("sites", n), "user_unknown_site", site=repr(site))
        for n, site in enumerate(sites)
        if site not in known
    ]
    if problems:
        raise InvalidInputError("unknown sites", problems)
