"""Request dependencies shared by the dashboard's routers."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from dashboard.auth import SESSION_COOKIE, Account, Role
from dashboard.security import CSRF_HEADER, SAFE_METHODS, csrf_matches
from gateway.catalogue import normalize_language

#: The pages send the language they are shown in, so the server's answers (refusals, "taken by …")
#: read in the page's language even when the user switched away from their account's.
LANGUAGE_HEADER = "X-Careline-Language"


async def current_account(request: Request) -> Account:
    ctx = request.app.state.careline
    token = request.cookies.get(SESSION_COOKIE)
    account: Account | None = await ctx.service.read(ctx.users.account_for, token)
    if account is None or token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
    if request.method not in SAFE_METHODS:
        guard_change(request, ctx, token)
    page_language = request.headers.get(LANGUAGE_HEADER)
    if page_language:
        return replace(account, page_language=normalize_language(page_language))
    return account


def guard_change(request: Request, ctx: Any, session_token: str) -> None:
    """A change made with the session cookie: from an allowed origin, with the session's CSRF token."""
    refusal = ctx.origins.refusal(request)
    if refusal is not None:
        ctx.metrics.http_refused.labels("origin").inc()
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    if not csrf_matches(session_token, request.headers.get(CSRF_HEADER)):
        ctx.metrics.http_refused.labels("csrf").inc()
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"missing or wrong {CSRF_HEADER} header; reload the page"
        )


# A carer ranks below an operator: refused every operator, manager and admin endpoint.
_RANK = {Role.CARER: -1, Role.OPERATOR: 0, Role.MANAGER: 1, Role.ADMIN: 2}


class RoleGuard:
    """A dependency: the signed-in account if its role is `least` or above, else 403. The OpenAPI
    document reads `least` to say who may call an endpoint (dashboard/openapi.py)."""

    def __init__(self, least: Role, refusal: str) -> None:
        self.least = least
        self.refusal = refusal

    async def __call__(self, account: Annotated[Account, Depends(current_account)]) -> Account:
        if _RANK[account.role] < _RANK[self.least]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, self.refusal)
        return account


class CarerGuard(RoleGuard):
    """Carers only: the carer's page acts for the responder the account names, nobody else's visits."""

    def __init__(self) -> None:
        super().__init__(Role.CARER, "carers only")

    async def __call__(self, account: Annotated[Account, Depends(current_account)]) -> Account:
        if account.role != Role.CARER:
            raise HTTPException(status.HTTP_403_FORBIDDEN, self.refusal)
        return account


operator_account = RoleGuard(Role.OPERATOR, "operators, managers and admins only")
manager_account = RoleGuard(Role.MANAGER, "managers and admins only")
carer_account = CarerGuard()

#: Anyone signed in, carers too: the session itself (who am I, sign out).
SignedIn = Annotated[Account, Depends(current_account)]
Operator = Annotated[Account, Depends(operator_account)]
Manager = Annotated[Account, Depends(manager_account)]
Carer = Annotated[Account, Depends(carer_account)]
