"""The directory in the database (real SQLite, migrated by Alembic): seeded once from the file, changed
only as a whole valid directory, every change audited in the same transaction, nothing deleted, the
key-safe code encrypted at rest and never in the audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from directory_fixtures import KEY_ENV, START, directory_config, directory_store, new_key
from pydantic import SecretStr
from sqlalchemy import func, select
from stores import store_bytes, store_rows

from common.errors import ConfigError, InvalidInputError
from gateway.clock import FakeClock
from gateway.config import CarelineConfig, DeviceConfig, ResidentConfig, VisitPlanConfig
from gateway.directory import device_registry, rule_context
from gateway.directory.changes import Incoming
from gateway.directory.sections import DirectorySections
from gateway.directory.store import DirectoryStore, StaleDirectoryError
from gateway.directory.tables import carried_fields
from gateway.incidents.schema import AuditEntry, DirectoryDevice, DirectoryResident


@pytest.fixture(autouse=True)
def directory_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = new_key()
    monkeypatch.setenv(KEY_ENV, key)
    return key


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "careline.db"


@pytest.fixture
def config(db_path: Path) -> CarelineConfig:
    return directory_config(db_path)


def audit(store: DirectoryStore) -> list[AuditEntry]:
    with store.incidents.reading() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def with_device(sections: DirectorySections, device: DeviceConfig) -> DirectorySections:
    return sections.model_copy(update={"devices": (*sections.devices, device)})


def test_the_first_start_seeds_the_directory_from_the_file_audited_as_imported_from_it(
    config: CarelineConfig,
) -> None:
    with directory_store(config) as store:
        seeded = store.seed(config)
        assert seeded is not None
        assert seeded.summary()[1] == "residents: 3 added, 0 changed, 0 discharged"
        assert store.load() == DirectorySections.of(config)
        entries = audit(store)
        assert {e.actor for e in entries} == {"import:directory.yaml"}
        assert [e.action for e in entries].count("directory.device.added") == 5
        assert entries[-1].action == "directory.imported"
        assert store.incidents.verify_audit_chain() is None


def test_afterwards_the_database_is_the_directory_and_the_file_no_longer_seeds(
    config: CarelineConfig, db_path: Path
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        store.apply_now(
            store.importing(Incoming(devices=DirectorySections.of(config).devices[:4]), None), "u"
        )
    edited_file = directory_config(db_path).model_copy(update={"devices": ()})
    with directory_store(edited_file) as store:
        assert store.seed(edited_file) is None
        assert [d.state for d in store.load().devices] == ["active"] * 4 + ["retired"]


def test_a_change_is_listed_per_kind_with_its_ids(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        sections = store.load()
        moved = sections.residents[1].model_copy(update={"room": "201"})
        new = with_device(
            sections.model_copy(update={"residents": (sections.residents[0], moved, sections.residents[2])}),
            DeviceConfig(id="fall-201", type="fall_sensor", site="sunrise", room="201"),
        )
        changes = store.plan(new, "user:admin").changes
        assert changes.of("devices") == {"added": ["fall-201"], "changed": [], "removed": []}
        assert changes.of("residents") == {"added": [], "changed": ["li"], "removed": []}
        assert changes.summary("zh-CN")[2] == "设备：新增 1，修改 0，停用 0"
        assert audit(store)[-1].action == "directory.imported"  # planning wrote nothing


def test_each_change_is_one_audit_entry_with_what_changed_before_and_after(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        sections = store.load()
        moved = sections.residents[1].model_copy(update={"room": "201"})
        store.apply_now(
            sections.model_copy(update={"residents": (sections.residents[0], moved, sections.residents[2])}),
            "user:manager",
        )
        entry = audit(store)[-1]
        assert (entry.actor, entry.action) == ("user:manager", "directory.resident.changed")
        assert entry.details == {
            "kind": "resident",
            "id": "li",
            "before": {"room": "102"},
            "after": {"room": "201"},
        }
        assert [v.action for v in store.history("resident", "li")] == [
            "directory.resident.added",
            "directory.resident.changed",
        ]


def test_a_directory_with_one_broken_reference_applies_nothing(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        before = len(audit(store))
        sections = store.load()
        good = DeviceConfig(id="door-102", type="door_sensor", site="sunrise", room="102")
        # Room 201 is Sunrise's; the district has no such room.
        stray = DeviceConfig(id="door-x", type="door_sensor", site="lotus", room="201")
        with pytest.raises(InvalidInputError) as refused:
            store.apply_now(with_device(with_device(sections, good), stray), "user:admin")
        [found] = refused.value.problems
        assert found.loc == ("devices", 6, "room")
        assert found.message == "device 'door-x' is at site 'lotus' but room '201' belongs to site 'sunrise'"
        assert len(audit(store)) == before
        assert [d.id for d in store.load().devices] == [d.id for d in sections.devices]


def test_an_import_leaving_out_a_device_retires_it_and_a_resident_is_discharged_never_deleted(
    config: CarelineConfig,
) -> None:
    clock = FakeClock(START)
    with directory_store(config, clock) as store:
        store.seed(config)
        sections = store.load()
        keep = Incoming(
            residents=sections.residents[:2],
            devices=tuple(d for d in sections.devices if d.id != "pendant-chen"),
        )
        changes = store.apply_now(store.importing(keep, None), "user:admin")
        assert changes.of("devices")["removed"] == ["pendant-chen"]
        assert changes.of("residents")["removed"] == ["chen"]
        after = store.load()
        chen = next(r for r in after.residents if r.id == "chen")
        assert (chen.status, chen.discharged_on) == ("discharged", START.date())
        assert next(d for d in after.devices if d.id == "pendant-chen").state == "retired"
        actions = [e.action for e in audit(store)[-2:]]
        assert actions == ["directory.resident.discharged", "directory.device.retired"]
        with store.incidents.reading() as session:
            assert session.scalar(select(func.count()).select_from(DirectoryResident)) == 3
            assert session.scalar(select(func.count()).select_from(DirectoryDevice)) == 5


def test_a_residents_csv_keeps_what_it_has_no_column_for(config: CarelineConfig) -> None:
    """A spreadsheet of residents has no column for visit plans, the daily call or the photo: importing
    it changes what it says and keeps the rest as stored."""
    clock = FakeClock(START)
    with directory_store(config, clock) as store:
        store.seed(config)
        sections = store.load()
        first = sections.residents[0]
        plan = VisitPlanConfig(id="weekly", carer="nurse", weekdays=("mon",), at="10:00")
        rich = first.model_copy(update={"photo_url": "/static/photos/resident-f.svg", "visits": (plan,)})
        store.apply_now(sections.model_copy(update={"residents": (rich, *sections.residents[1:])}), "user:a")
        # What parse_csv gives for that row: the columns it has, the others at their defaults.
        from_csv = first.model_copy(update={"notes": "新的护理说明", "photo_url": None, "visits": ()})
        sheet = Incoming(residents=(from_csv, *sections.residents[1:]), carries=carried_fields("residents"))
        store.apply_now(store.importing(sheet, None), "user:a")
        after = next(r for r in store.load().residents if r.id == first.id)
        assert after.notes == "新的护理说明"
        assert (after.photo_url, after.visits) == (rich.photo_url, (plan,))
        # A YAML file carries every field: what it leaves empty is emptied.
        whole = Incoming(residents=(from_csv, *sections.residents[1:]))
        store.apply_now(store.importing(whole, None), "user:a")
        after = next(r for r in store.load().residents if r.id == first.id)
        assert (after.photo_url, after.visits) == (None, ())


def test_leaving_out_a_resident_whose_pendant_stays_active_is_refused(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        sections = store.load()
        with pytest.raises(InvalidInputError) as refused:
            store.apply_now(store.importing(Incoming(residents=sections.residents[:2]), None), "user:admin")
        assert refused.value.problems[0].code == "device_resident_discharged"


def test_retired_and_spare_devices_are_not_bound_and_discharged_residents_are_not_watched(
    config: CarelineConfig,
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        sections = store.load()
        keep = Incoming(residents=sections.residents[:2], devices=sections.devices[:3])
        store.apply_now(store.importing(keep, None), "user:admin")
        gateway_config = store.load().applied_to(config)
    registry = device_registry(gateway_config)
    assert registry.by_id("pendant-wang") is not None
    assert registry.by_id("pendant-chen") is None  # retired
    assert registry.by_id("spare-1") is None  # in the cupboard
    assert [r.id for r in rule_context(gateway_config).residents()] == ["wang", "li"]


def test_the_key_safe_code_is_encrypted_at_rest_and_never_in_the_audit_log(
    config: CarelineConfig, db_path: Path
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        chen = next(r for r in store.load().residents if r.id == "chen")
        assert chen.key_safe_code == SecretStr("4711")
        store.apply_now(
            lambda d: d.model_copy(
                update={
                    "residents": tuple(
                        r.model_copy(update={"key_safe_code": SecretStr("9021")}) if r.id == "chen" else r
                        for r in d.residents
                    )
                }
            ),
            "user:manager",
        )
        assert store.reveal_key_safe("chen", "user:operator") == "9021"
        assert store.reveal_key_safe("chen", "user:operator", frozenset({"sunrise"})) is None
        entries = [(e.action, e.details) for e in audit(store)]
        raw = store_bytes(config.storage.url, db_path)
    assert b"4711" not in raw
    assert b"9021" not in raw
    [(sealed,)] = store_rows(config.storage.url, "SELECT key_safe FROM directory_residents WHERE id = 'chen'")
    assert sealed.startswith("gAAAA")  # a Fernet token
    changed = [d for a, d in entries if a == "directory.resident.changed"]
    assert changed == [
        {"kind": "resident", "id": "chen", "before": {}, "after": {}, "secrets": {"key_safe_code": "changed"}}
    ]
    assert [a for a, _ in entries].count("directory.resident.key_safe_revealed") == 1
    assert all("4711" not in str(d) and "9021" not in str(d) for _, d in entries)


def test_a_key_safe_code_cannot_be_kept_without_a_directory_key(db_path: Path) -> None:
    config = directory_config(db_path, directory_key_env=None)
    with directory_store(config) as store, pytest.raises(InvalidInputError) as refused:
        store.seed(config)
    assert refused.value.problems[0].loc == ("residents", 2, "key_safe_code")
    assert refused.value.problems[0].code == "key_safe_needs_key"


def test_a_stored_code_cannot_be_read_with_another_key(
    config: CarelineConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with directory_store(config) as store:
        store.seed(config)
    monkeypatch.setenv(KEY_ENV, new_key())
    with directory_store(config) as store, pytest.raises(ConfigError, match="not sealed with the key"):
        store.load()


def test_rotating_the_key_keeps_the_old_codes_readable(
    config: CarelineConfig, monkeypatch: pytest.MonkeyPatch, directory_key: str
) -> None:
    with directory_store(config) as store:
        store.seed(config)
    monkeypatch.setenv(KEY_ENV, f"{new_key()},{directory_key}")
    with directory_store(config) as store:
        assert next(r for r in store.load().residents if r.id == "chen").key_safe_code == SecretStr("4711")


async def test_listeners_hear_the_new_directory_after_the_commit(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        heard: list[tuple[DirectorySections, int]] = []

        async def listener(sections: DirectorySections) -> None:
            heard.append((sections, len(store.load().devices)))

        store.subscribe(listener)
        pendant = DeviceConfig(id="pendant-new", type="sos_button", site="sunrise", room="201")
        await store.apply(lambda d: with_device(d, pendant), "user:admin")
        [(sections, committed_devices)] = heard
        assert sections.devices[-1] == pendant
        assert committed_devices == 6  # told only once it was in the database


async def test_a_change_planned_before_another_commit_is_planned_again(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        stale = store.plan(lambda d: with_device(d, DeviceConfig(id="a", type="other", site="sunrise")), "u")
        store.apply_now(lambda d: with_device(d, DeviceConfig(id="b", type="other", site="sunrise")), "u")
        with pytest.raises(StaleDirectoryError):
            store.commit(stale)
        changes, sections = await store.apply(
            lambda d: with_device(d, DeviceConfig(id="a", type="other", site="sunrise")), "u"
        )
        assert [d.id for d in sections.devices][-2:] == ["b", "a"]
        assert changes.of("devices")["added"] == ["a"]


async def test_the_audit_chain_holds_when_another_process_appended_in_between(config: CarelineConfig) -> None:
    # `careline directory import` writes from its own process while the gateway runs.
    with directory_store(config) as gateway_side, directory_store(config) as command_line:
        gateway_side.seed(config)
        await gateway_side.apply(
            lambda d: with_device(d, DeviceConfig(id="a", type="other", site="sunrise")), "u"
        )
        command_line.apply_now(
            lambda d: with_device(d, DeviceConfig(id="b", type="other", site="sunrise")), "c"
        )
        await gateway_side.apply(
            lambda d: with_device(d, DeviceConfig(id="c", type="other", site="sunrise")), "u"
        )
        assert gateway_side.incidents.verify_audit_chain() is None


def test_residents_written_the_earlier_way_read_the_same() -> None:
    earlier = ResidentConfig.model_validate(
        {"id": "w", "name": "W", "site": "s", "wandering_risk": True, "language": "en"}
    )
    assert (earlier.wandering_risk, earlier.risks, earlier.language, earlier.languages) == (
        True,
        ("wandering",),
        "en",
        ("en",),
    )
    assert ResidentConfig.model_validate(earlier.model_dump()) == earlier


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"status": "discharged"}, "discharge_date"),
        ({"birth_year": 1850}, "birth_year_implausible"),
        ({"language": "en", "languages": ["en"]}, "language_and_languages"),
        ({"key_safe_code": "12 34"}, "key_safe_code_form"),
        ({"contacts": [{"name": "Li", "phones": ["138 0000 0001"]}]}, "phone_not_e164"),
    ],
)
def test_a_resident_that_does_not_hold_together_is_refused_with_our_reason(
    fields: dict[str, object], code: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        ResidentConfig.model_validate({"id": "w", "name": "W", "site": "s", **fields})
    assert refused.value.errors()[0]["type"] == code


def test_changes_made_at_the_same_time_all_land(config: CarelineConfig) -> None:
    async def both() -> None:
        with directory_store(config) as store:
            store.seed(config)
            await asyncio.gather(
                *(
                    store.apply(
                        lambda d, i=i: with_device(d, DeviceConfig(id=f"n{i}", type="other", site="sunrise")),
                        "u",
                    )
                    for i in range(4)
                )
            )
            assert {"n0", "n1", "n2", "n3"} <= {d.id for d in store.load().devices}

    asyncio.run(both())
