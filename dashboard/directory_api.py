"""REST for the directory: sites, residents, devices, responders, escalation policies and users.

Roles are enforced here, on the server: operators read (and may reveal a key-safe code, audited);
managers also edit residents and their contacts (and import residents); admins edit everything and the
users. A user with sites sees and changes only those sites: an entry of another site answers 404, as if
it did not exist. Entries are validated with the same models as the configuration file; a refusal lists
every problem with its field (or file line, or CSV row and column), in the user's language.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, SecretStr, ValidationError

from common.errors import ConfigError, InvalidInputError
from dashboard.auth import Account, Role
from dashboard.deps import RoleGuard
from dashboard.openapi import CONFLICT, CSV, NOT_FOUND, Responses, refused
from dashboard.user_admin import UserAdmin, UserChange, UserNotFoundError
from gateway.catalogue import Language, normalize_language
from gateway.config import problems_of
from gateway.directory.changes import KINDS, SINGULAR, ChangeSet, Kind
from gateway.directory.sections import DirectorySections
from gateway.directory.store import MODELS, DirectoryStore, StaleDirectoryError
from gateway.directory.tables import TableKind, export_csv, parse_csv, template
from gateway.directory.transfer import (
    MAX_IMPORT_BYTES,
    DirectoryFile,
    decode_upload,
    export_yaml,
    parse_yaml,
    problem_json,
)
from gateway.incidents.service import IncidentService

LanguageParam = Literal["en", "zh-CN"]
#: Offsets past this are refused (422): SQLite's integers end at 2**63, and no list is that long.
MAX_OFFSET = 10_000_000


@dataclass(frozen=True, slots=True)
class KindRoutes:
    kind: Kind
    #: The least role that may change entries of this kind.
    editor: Role
    #: Columns a list may be filtered on (`?site=sunrise&state=active`).
    filters: tuple[str, ...]
    #: How an entry ends: a state change (discharge, retire) or withdrawal from the directory.
    ending: Literal["discharge", "retire", "withdraw"]


ROUTES = (
    KindRoutes("sites", Role.ADMIN, ("kind",), "withdraw"),
    KindRoutes("residents", Role.MANAGER, ("site", "room", "status"), "discharge"),
    KindRoutes("devices", Role.ADMIN, ("site", "room", "resident", "state", "type"), "retire"),
    KindRoutes("responders", Role.ADMIN, (), "withdraw"),
    KindRoutes("policies", Role.ADMIN, (), "withdraw"),
)


def at_least(role: Role) -> RoleGuard:
    return RoleGuard(role, f"{role.value}s and above only")


Reader = Annotated[Account, Depends(at_least(Role.OPERATOR))]
Manager = Annotated[Account, Depends(at_least(Role.MANAGER))]
Admin = Annotated[Account, Depends(at_least(Role.ADMIN))]


def _language(account: Account) -> Language:
    return normalize_language(account.wording)


def _service(request: Request) -> IncidentService:
    service: IncidentService = request.app.state.careline.service
    return service


def _store(request: Request) -> DirectoryStore:
    store: DirectoryStore | None = request.app.state.careline.directory
    if store is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the directory is not kept here")
    return store


def _refusal(exc: InvalidInputError, account: Account, source: DirectoryFile | None = None) -> HTTPException:
    problems = source.locate(exc.problems) if source is not None else exc.problems
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        {
            "message": "refused, nothing was applied",
            "problems": [problem_json(p, _language(account)) for p in problems],
        },
    )


class ChangeOutcome(BaseModel):
    """What a directory change did: per kind, the ids added, changed and removed; a line per kind."""

    changes: dict[str, dict[str, list[str]]]
    summary: list[str]


class ImportOutcome(ChangeOutcome):
    source: str
    #: False for a preview: nothing was written.
    applied: bool


class EntryPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[dict[str, Any]]


class KeySafeCode(BaseModel):
    key_safe_code: str


def _outcome(changes: ChangeSet, account: Account) -> ChangeOutcome:
    return ChangeOutcome(changes=changes.as_json(), summary=changes.summary(_language(account)))


async def _apply(
    request: Request, account: Account, edit: Callable[[DirectorySections], DirectorySections]
) -> ChangeSet:
    try:
        changes, _ = await _store(request).apply(edit, f"user:{account.username}")
    except InvalidInputError as exc:
        raise _refusal(exc, account) from None
    except StaleDirectoryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return changes


def _validated(kind: Kind, payload: dict[str, Any], account: Account) -> Any:
    try:
        return MODELS[kind].model_validate(payload)
    except ValidationError as exc:
        raise _refusal(InvalidInputError("invalid entry", problems_of(exc)), account) from None


def _in_scope(account: Account, kind: Kind, entry: Any) -> bool:
    scope = account.scope
    if scope is None:
        return True
    site = entry.id if kind == "sites" else getattr(entry, "site", None)
    if site is not None:
        return site in scope
    return False  # responders and policies span sites: admins' business


class _GoneError(LookupError):
    pass


def _replacing(
    kind: Kind, entry_id: str, change: Callable[[Any], Any | None]
) -> Callable[[DirectorySections], DirectorySections]:
    """An edit replacing entry `entry_id` of `kind` with `change(entry)` (None: withdraw it)."""

    def edit(current: DirectorySections) -> DirectorySections:
        entries = list(getattr(current, kind))
        for n, entry in enumerate(entries):
            if entry.id == entry_id:
                replaced = change(entry)
                entries[n : n + 1] = [] if replaced is None else [replaced]
                return current.model_copy(update={kind: tuple(entries)})
        raise _GoneError(entry_id)

    return edit


def _add_kind_routes(router: APIRouter, spec: KindRoutes) -> None:
    kind, singular = spec.kind, SINGULAR[spec.kind]
    editor = Annotated[Account, Depends(at_least(spec.editor))]
    tag: list[str | Enum] = [f"directory: {kind}"]
    schema = {"requestBody": {"content": {"application/json": {"schema": MODELS[kind].model_json_schema()}}}}

    async def list_entries(
        request: Request,
        account: Reader,
        q: Annotated[str | None, Query(max_length=100)] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> EntryPage:
        filters = {name: value for name in spec.filters if (value := request.query_params.get(name))}
        page = await _service(request).read(
            _store(request).page,
            kind,
            scope=account.scope,
            search=q,
            filters=filters,
            offset=offset,
            limit=limit,
        )
        return EntryPage(total=page.total, offset=offset, limit=limit, items=page.items)

    async def get_entry(request: Request, entry_id: str, account: Reader) -> dict[str, Any]:
        found = await _service(request).read(_store(request).get, kind, entry_id, account.scope)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {singular} {entry_id!r}")
        return found

    async def create_entry(
        request: Request, account: editor, payload: Annotated[dict[str, Any], Body()]
    ) -> ChangeOutcome:
        entry = _validated(kind, payload, account)
        if not _in_scope(account, kind, entry):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {getattr(entry, 'site', entry.id)!r}")
        if await _exists(request, kind, entry.id):
            raise HTTPException(status.HTTP_409_CONFLICT, f"{singular} {entry.id!r} exists already")
        changes = await _apply(
            request, account, lambda d: d.model_copy(update={kind: (*getattr(d, kind), entry)})
        )
        return _outcome(changes, account)

    async def update_entry(
        request: Request, entry_id: str, account: editor, payload: Annotated[dict[str, Any], Body()]
    ) -> ChangeOutcome:
        await get_entry(request, entry_id, account)
        entry = _validated(kind, {**payload, "id": payload.get("id", entry_id)}, account)
        if entry.id != entry_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "an entry's id cannot change")
        if not _in_scope(account, kind, entry):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no site {getattr(entry, 'site', entry.id)!r}")
        keeps_code = kind == "residents" and "key_safe_code" not in payload

        def updated(old: Any) -> Any:
            # A form that does not show the key-safe code leaves it as it is.
            return entry.model_copy(update={"key_safe_code": old.key_safe_code}) if keeps_code else entry

        return _outcome(await _edit(request, account, _replacing(kind, entry_id, updated)), account)

    async def end_entry(
        request: Request,
        entry_id: str,
        account: editor,
        on: Annotated[date | None, Body(embed=True)] = None,
    ) -> ChangeOutcome:
        await get_entry(request, entry_id, account)
        store = _store(request)

        def ended(old: Any) -> Any:
            if spec.ending == "retire":
                return old.model_copy(update={"state": "retired"})
            if spec.ending == "discharge":
                if not old.active:
                    return old
                return old.model_copy(
                    update={"status": "discharged", "discharged_on": on or store.today(old.site)}
                )
            return None

        return _outcome(await _edit(request, account, _replacing(kind, entry_id, ended)), account)

    async def entry_history(request: Request, entry_id: str, account: Reader) -> list[dict[str, Any]]:
        await get_entry(request, entry_id, account)
        views = await _service(request).read(_store(request).history, singular, entry_id)
        return [view.model_dump(mode="json") for view in views]

    base = f"/api/directory/{kind}"
    router.add_api_route(base, list_entries, methods=["GET"], name=f"list_{kind}", tags=tag)
    router.add_api_route(
        base,
        create_entry,
        methods=["POST"],
        name=f"create_{singular}",
        tags=tag,
        openapi_extra=schema,
        responses={**NOT_FOUND, **CONFLICT},
    )
    router.add_api_route(f"{base}/{{entry_id}}", get_entry, methods=["GET"], name=f"get_{singular}", tags=tag)
    router.add_api_route(
        f"{base}/{{entry_id}}",
        update_entry,
        methods=["PUT"],
        name=f"update_{singular}",
        tags=tag,
        openapi_extra=schema,
        responses=CONFLICT,
    )
    if spec.ending == "withdraw":
        router.add_api_route(
            f"{base}/{{entry_id}}",
            end_entry,
            methods=["DELETE"],
            name=f"withdraw_{singular}",
            tags=tag,
            responses=CONFLICT,
        )
    else:
        router.add_api_route(
            f"{base}/{{entry_id}}/{spec.ending}",
            end_entry,
            methods=["POST"],
            name=f"{spec.ending}_{singular}",
            tags=tag,
            responses=CONFLICT,
        )
    router.add_api_route(
        f"{base}/{{entry_id}}/history", entry_history, methods=["GET"], name=f"{singular}_history", tags=tag
    )


async def _exists(request: Request, kind: Kind, entry_id: str) -> bool:
    # Across every site and state: an id stays taken by a retired device or a discharged resident.
    found = await _service(request).read(_store(request).get, kind, entry_id, None)
    return found is not None


async def _edit(
    request: Request, account: Account, edit: Callable[[DirectorySections], DirectorySections]
) -> ChangeSet:
    try:
        return await _apply(request, account, edit)
    except _GoneError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no entry {exc.args[0]!r}") from None


def _add_key_safe_route(router: APIRouter) -> None:
    async def reveal_key_safe(request: Request, entry_id: str, account: Reader) -> KeySafeCode:
        """The resident's key-safe code, for the responder at the door. Every reveal is audited."""
        store = _store(request)
        try:
            code = await _service(request).bookkeeping(
                store.reveal_key_safe, entry_id, f"user:{account.username}", account.scope
            )
        except ConfigError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if code is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no key-safe code for resident {entry_id!r}")
        return KeySafeCode(key_safe_code=code)

    router.add_api_route(
        "/api/directory/residents/{entry_id}/key-safe",
        reveal_key_safe,
        methods=["POST"],
        name="reveal_key_safe",
        tags=list[str | Enum](["directory: residents"]),
        responses=CONFLICT,
    )


# -- import, export, templates -------------------------------------------------------------------------


async def _upload(
    request: Request, file: UploadFile, kind: TableKind | None, account: Account
) -> DirectoryFile:
    metrics = request.app.state.careline.metrics
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_IMPORT_BYTES + 64 * 1024:
        metrics.directory_imports.labels("too_large").inc()
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"at most {MAX_IMPORT_BYTES} bytes")
    data = await file.read(MAX_IMPORT_BYTES + 1)
    name = (file.filename or "upload").rsplit("/", 1)[-1][:100]
    try:
        if name.lower().endswith(".csv") or kind is not None:
            parsed = parse_csv(data, name, kind)
        else:
            parsed = parse_yaml(decode_upload(data), name)
    except InvalidInputError as exc:
        too_large = any(p.code == "file_too_large" for p in exc.problems)
        metrics.directory_imports.labels("too_large" if too_large else "refused").inc()
        raise _refusal(exc, account) from None
    if account.role != Role.ADMIN and set(parsed.incoming.kinds()) - {"residents"}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "managers import residents only")
    return parsed


def _add_transfer_routes(router: APIRouter) -> None:
    tag: list[str | Enum] = ["directory: files"]

    async def import_file(
        request: Request, account: Manager, file: UploadFile, kind: TableKind | None, apply: bool
    ) -> ImportOutcome:
        parsed = await _upload(request, file, kind, account)
        store = _store(request)
        service = _service(request)
        edit = store.importing(parsed.incoming, account.scope)
        actor = f"user:{account.username}"
        try:
            if apply:
                changes, _ = await store.apply(edit, actor, source=parsed.source)
            else:
                changes = (await service.read(store.plan, edit, actor)).changes
        except InvalidInputError as exc:
            request.app.state.careline.metrics.directory_imports.labels("refused").inc()
            raise _refusal(exc, account, parsed) from None
        except (ConfigError, StaleDirectoryError) as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if apply:
            request.app.state.careline.metrics.directory_imports.labels("applied").inc()
        outcome = _outcome(changes, account)
        return ImportOutcome(source=parsed.source, applied=apply, **outcome.model_dump())

    async def preview_import(
        request: Request,
        account: Manager,
        file: Annotated[UploadFile, File()],
        kind: Annotated[TableKind | None, Form()] = None,
    ) -> ImportOutcome:
        """What importing the file would change; nothing is written."""
        return await import_file(request, account, file, kind, apply=False)

    async def apply_import(
        request: Request,
        account: Manager,
        file: Annotated[UploadFile, File()],
        kind: Annotated[TableKind | None, Form()] = None,
    ) -> ImportOutcome:
        """Import the file: every kind it lists replaced in full (what it leaves out retired), validated
        as a whole, applied in one transaction or not at all."""
        return await import_file(request, account, file, kind, apply=True)

    async def export(
        request: Request,
        account: Manager,
        format: Literal["yaml", "csv"] = "yaml",
        kind: TableKind | None = None,
        language: LanguageParam | None = None,
    ) -> Response:
        store = _store(request)
        service = _service(request)
        if format == "csv":
            if kind is None:
                raise HTTPException(
                    status.HTTP_422_UNPROCESSABLE_CONTENT, "a CSV export needs kind=residents or devices"
                )
            rows = await service.read(store.export_rows, [kind], account.scope)
            body = export_csv(kind, rows[kind], language or _language(account))
            return _download(body, f"careline-{kind}.csv", "text/csv; charset=utf-8")
        # A user who sees some sites exports only what they may import back.
        kinds: list[Kind] = list(KINDS) if account.scope is None else ["residents", "devices"]
        rows = await service.read(store.export_rows, kinds if kind is None else [kind], account.scope)
        text = export_yaml(rows, exported_by=account.username, at=store.now())
        return _download(text.encode("utf-8"), "careline-directory.yaml", "application/yaml; charset=utf-8")

    async def csv_template(_: Reader, kind: TableKind, language: LanguageParam = "zh-CN") -> Response:
        return _download(template(kind, language), f"careline-{kind}-template.csv", "text/csv; charset=utf-8")

    importing: Responses = {**CONFLICT, 413: refused(f"a file holds at most {MAX_IMPORT_BYTES} bytes")}
    yaml_or_csv = {"application/yaml": {}, **CSV}
    for path, route in (("preview", preview_import), ("apply", apply_import)):
        router.add_api_route(
            f"/api/directory/import/{path}", route, methods=["POST"], tags=tag, responses=importing
        )
    router.add_api_route(
        "/api/directory/export", export, methods=["GET"], tags=tag, responses={200: {"content": yaml_or_csv}}
    )
    router.add_api_route(
        "/api/directory/template", csv_template, methods=["GET"], tags=tag, responses={200: {"content": CSV}}
    )


def _download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(
        body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


# -- users -----------------------------------------------------------------------------------------------


class NewUser(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
    password: SecretStr
    role: Role = Role.OPERATOR
    language: LanguageParam = "zh-CN"
    sites: tuple[str, ...] = ()


def _add_user_routes(router: APIRouter) -> None:
    tag: list[str | Enum] = ["directory: users"]

    def admin_of(request: Request) -> UserAdmin:
        return UserAdmin(_store(request))

    async def list_users(request: Request, _: Admin) -> list[dict[str, Any]]:
        return await _service(request).read(admin_of(request).users)

    async def create_user(request: Request, account: Admin, user: NewUser) -> dict[str, Any]:
        admin = admin_of(request)
        try:
            return await _service(request).bookkeeping(
                admin.create,
                user.username,
                user.password.get_secret_value(),
                user.role,
                user.language,
                user.sites,
                actor=f"user:{account.username}",
            )
        except InvalidInputError as exc:
            raise _refusal(exc, account) from None
        except ValueError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None

    async def update_user(
        request: Request, username: str, account: Admin, change: UserChange
    ) -> dict[str, Any]:
        admin = admin_of(request)
        try:
            return await _service(request).bookkeeping(
                admin.update, username, change, actor=f"user:{account.username}"
            )
        except UserNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {username!r}") from None
        except InvalidInputError as exc:
            raise _refusal(exc, account) from None

    async def user_history(request: Request, username: str, _: Admin) -> list[dict[str, Any]]:
        views = await _service(request).read(_store(request).history, "user", username)
        return [view.model_dump(mode="json") for view in views]

    router.add_api_route("/api/directory/users", list_users, methods=["GET"], tags=tag)
    router.add_api_route("/api/directory/users", create_user, methods=["POST"], tags=tag, responses=CONFLICT)
    router.add_api_route("/api/directory/users/{username}", update_user, methods=["PUT"], tags=tag)
    router.add_api_route("/api/directory/users/{username}/history", user_history, methods=["GET"], tags=tag)


def directory_router() -> APIRouter:
    router = APIRouter()
    for spec in ROUTES:
        _add_kind_routes(router, spec)
    _add_key_safe_route(router)
    _add_transfer_routes(router)
    _add_user_routes(router)
    return router
