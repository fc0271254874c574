"""Operators, managers and admins: argon2-hashed passwords, server-side sessions behind a cookie."""

from __future__ import annotations

import enum
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from gateway.incidents.db import read_only
from gateway.incidents.schema import User, UserSession

SESSION_COOKIE = "careline_session"


class Role(enum.StrEnum):
    OPERATOR = "operator"
    MANAGER = "manager"
    ADMIN = "admin"
    #: A visiting carer (docs/visits.md): their user name is their responder id; they use only the
    #: carer's page (`/carer`), never the console or the office.
    CARER = "carer"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    role: Role
    language: str
    #: The sites this user sees; empty means every site (and an admin sees every site regardless).
    sites: tuple[str, ...] = ()
    #: The language the page asking is shown in (its X-Careline-Language header), for the words of
    #: refusals and other texts the server answers with; the account's `language` stays the default.
    page_language: str | None = None

    @property
    def wording(self) -> str:
        """The language to word an answer to this request in."""
        return self.page_language or self.language

    @property
    def scope(self) -> frozenset[str] | None:
        """The sites this user may see and change, or None for every site."""
        return None if self.role == Role.ADMIN or not self.sites else frozenset(self.sites)


class UserExistsError(ValueError):
    pass


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    def __init__(self, database: Engine, clock: Callable[[], datetime], session_hours: float) -> None:
        self._sessions = sessionmaker(database, expire_on_commit=False)
        self._reads = sessionmaker(read_only(database), expire_on_commit=False)
        self._now = clock
        self._lifetime = timedelta(hours=session_hours)
        self._hasher = PasswordHasher()

    def create(self, username: str, password: str, role: Role, language: str = "zh-CN") -> Account:
        if len(password) < 10:
            raise ValueError("a password needs at least 10 characters")
        user = User(
            username=username,
            password_hash=self._hasher.hash(password),
            role=role.value,
            language=language,
            created_at=self._now(),
            disabled=False,
        )
        try:
            with self._sessions.begin() as session:
                session.add(user)
        except IntegrityError:
            raise UserExistsError(f"user {username!r} already exists") from None
        return _account(user)

    def count(self) -> int:
        with self._reads() as session:
            return len(session.scalars(select(User.id)).all())

    def login(self, username: str, password: str) -> tuple[Account, str] | None:
        """The account and a new session token, or None for wrong credentials."""
        account = self.authenticate(username, password)
        return None if account is None else (account, self.open_session(account))

    def authenticate(self, username: str, password: str) -> Account | None:
        """The account these credentials belong to, or None. Only reads: run it beside the writer, so
        password hashing never holds the thread that commits alarms."""
        with self._reads() as session:
            user = session.scalar(select(User).where(User.username == username))
            if user is None or user.disabled or not self._verify(user.password_hash, password):
                return None
            return _account(user)

    def open_session(self, account: Account) -> str:
        """A new session for a verified account; its token (the cookie's value). A write."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        with self._sessions.begin() as session:
            session.add(
                UserSession(
                    token_hash=_token_hash(token),
                    user_id=account.id,
                    created_at=now,
                    expires_at=now + self._lifetime,
                )
            )
        return token

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def account_for(self, token: str | None) -> Account | None:
        if not token:
            return None
        with self._reads() as session:
            row = session.get(UserSession, _token_hash(token))
            if row is None or row.expires_at <= self._now():
                return None
            user = session.get(User, row.user_id)
            return None if user is None or user.disabled else _account(user)

    def session_started(self, token: str | None) -> datetime | None:
        """When the session behind `token` was opened (a shift handover starts from it)."""
        if not token:
            return None
        with self._reads() as session:
            row = session.get(UserSession, _token_hash(token))
            return None if row is None else row.created_at

    def logout(self, token: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(UserSession).where(UserSession.token_hash == _token_hash(token)))


def _account(user: User) -> Account:
    return Account(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        language=user.language,
        sites=tuple(user.sites or ()),
    )
