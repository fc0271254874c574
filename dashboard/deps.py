"""Request dependencies shared by the dashboard's routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from dashboard.auth import SESSION_COOKIE, Account, Role


async def current_account(request: Request) -> Account:
    ctx = request.app.state.careline
    account: Account | None = await ctx.service.read(
        ctx.users.account_for, request.cookies.get(SESSION_COOKIE)
    )
    if account is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")
    return account


async def manager_account(request: Request) -> Account:
    account = await current_account(request)
    if account.role not in (Role.MANAGER, Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "managers and admins only")
    return account


Operator = Annotated[Account, Depends(current_account)]
Manager = Annotated[Account, Depends(manager_account)]
