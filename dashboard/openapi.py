"""What the OpenAPI document says an endpoint may refuse with, so a client can rely on every answer.

The refusals every endpoint shares are read from the route itself when the document is first built:
who may call it (its `current_account` / `RoleGuard` dependencies: 401 without a session, 403 below the
role, and 403 for a change without the session's CSRF token or from another origin), what it takes (a
body that cannot be read: 400; parameters out of range: 422) and whether it names something (a path
parameter: 404 when there is none, or none of the caller's sites). Refusals particular to one endpoint
(409, 413, 429, 503, 404 for an id in a body) are declared with the route, from the dictionaries here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from dashboard.auth import Role
from dashboard.deps import RoleGuard, current_account
from dashboard.security import SAFE_METHODS

Responses = dict[int | str, dict[str, Any]]


class Problems(BaseModel):
    """A directory change refused: nothing was applied, and every problem found, located."""

    message: str
    problems: list[dict[str, Any]]


class Refusal(BaseModel):
    """Why a request was refused: a sentence; FastAPI's list of the parameters at fault; or, for a
    directory change, every problem with its field, file line or CSV cell."""

    detail: str | list[dict[str, Any]] | Problems


def refused(description: str) -> dict[str, Any]:
    return {"model": Refusal, "description": description}


NOT_FOUND: Responses = {404: refused("nothing by that id, or not in the caller's sites")}
CONFLICT: Responses = {409: refused("the change conflicts with the current state")}
UNAVAILABLE: Responses = {503: refused("the gateway is degraded or this part is not kept here")}
CSV = {"text/csv": {"schema": {"type": "string"}}}
#: An answer in JSON, or in CSV with `format=csv`.
JSON_OR_CSV: Responses = {200: {"content": {"application/json": {}, **CSV}}}


def json_or_csv(model: type[BaseModel]) -> Responses:
    """An answer in JSON shaped as `model`, or in CSV with `format=csv`."""
    return {200: {"model": model, "content": {"application/json": {}, **CSV}}}


def document_refusals(app: FastAPI) -> None:
    """Have the document name the shared refusals of every route, those included later too."""

    def openapi() -> dict[str, Any]:
        # FastAPI keeps the document until the routes change; adding to it again changes nothing.
        document = FastAPI.openapi(app)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        refusal = Refusal.model_json_schema(ref_template=f"{_COMPONENTS}{{model}}")
        schemas.update(refusal.pop("$defs", {}), Refusal=refusal)
        for path, route in _api_routes(app.routes):
            for method in route.methods or ():
                operation = document["paths"].get(path, {}).get(method.lower())
                if operation is not None:
                    _declare(route, method, operation["responses"])
                    _hoist_definitions(operation, schemas)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


_COMPONENTS = "#/components/schemas/"


def _api_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    for route in routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield prefix + route.path_format, route
        # An included router stays a router of its own, its routes as declared there.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]


def _hoist_definitions(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A body described by a model's own JSON Schema (`openapi_extra`, the directory's entries) keeps
    its nested models in `$defs`, which nothing outside it can resolve: they join the components."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        definitions = media.get("schema", {}).pop("$defs", None)
        if definitions:
            for name, definition in definitions.items():
                schemas.setdefault(name, _components_refs(definition))
            media["schema"] = _components_refs(media["schema"])


def _components_refs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: value.replace("#/$defs/", _COMPONENTS)
            if key == "$ref" and isinstance(value, str)
            else _components_refs(value)
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_components_refs(item) for item in schema]
    return schema


def _refusal(description: str) -> dict[str, Any]:
    schema = {"$ref": f"{_COMPONENTS}Refusal"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _declare(route: APIRoute, method: str, responses: dict[str, Any]) -> None:
    least = _least_role(route.dependant)
    if least is not None:
        responses.setdefault("401", _refusal("not signed in, or the session has ended"))
        # A carer is refused every route but their own page's and the session's; every change needs
        # the CSRF token.
        who = {
            Role.OPERATOR: "carers are refused",
            Role.MANAGER: "managers and admins only",
            Role.ADMIN: "admins only",
            Role.CARER: "carers only",
        }
        csrf = "a change needs the session's CSRF token and its own origin"
        reasons = [who[least]] if method in SAFE_METHODS else [who[least], csrf]
        responses.setdefault("403", _refusal("; ".join(reasons)))
    if route.body_field is not None:
        responses.setdefault("400", _refusal("the body could not be read"))
    if route.dependant.path_params:
        responses.setdefault("404", _refusal("nothing by that id, or not in the caller's sites"))
    if "422" in responses:
        # FastAPI names its own list of faults only; the endpoints refuse in sentences and problems too.
        responses["422"] = _refusal("a parameter or the body is not valid")


def _least_role(dependant: Dependant) -> Role | None:
    """The least role the route lets in, None if it needs no session."""
    roles = [Role.OPERATOR] if dependant.call is current_account else []
    if isinstance(dependant.call, RoleGuard):
        roles.append(dependant.call.least)
    for dependency in dependant.dependencies:
        found = _least_role(dependency)
        if found is not None:
            roles.append(found)
    if not roles:
        return None
    order = list(Role)
    return max(roles, key=order.index)
