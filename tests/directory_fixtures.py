"""A small two-site directory (a care home and a district of elders at home) and its store on real
SQLite, for the directory's tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from stores import store_url

from gateway.clock import FakeClock
from gateway.config import CarelineConfig, load_config
from gateway.directory import Directory
from gateway.directory.keysafe import KeySafeCipher
from gateway.directory.store import DirectoryStore
from gateway.incidents.db import make_engine
from gateway.incidents.migrate import upgrade
from gateway.incidents.service import IncidentService
from gateway.incidents.store import IncidentStore

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEY_ENV = "CARELINE_TEST_DIRECTORY_KEY"

DIRECTORY_YAML = """\
sites:
  - id: sunrise
    name: Sunrise Care Home
    kind: care_home
    wings: [{id: A, name: Memory care}, {id: B}]
    rooms:
      - {id: "101", wing: A}
      - {id: "102", wing: A}
      - {id: "201", wing: B}
  - id: lotus
    name: Lotus District
    kind: district
    address: 莲花街道
    rooms:
      - {id: home-chen}
residents:
  - id: wang
    name: 王秀英
    site: sunrise
    room: "101"
    wandering_risk: true
    language: zh-CN
    notes: 夜间易醒
  - id: li
    name: 李建国
    site: sunrise
    room: "102"
    birth_year: 1938
    risks: [falls, choking]
    conditions: [高血压, 糖尿病]
    contacts:
      - {name: 李明, relation: 儿子, phones: ["+86 138 0000 0001"], languages: [zh-CN]}
      - {name: Anna Li, relation: daughter, phones: ["+44 20 7946 0000"], languages: [en, zh-CN]}
  - id: chen
    name: 陈阿婆
    site: lotus
    room: home-chen
    address: 莲花路 8 号 3 楼
    access_notes: 钥匙箱在门左侧
    key_safe_code: "4711"
    check_in_consent: true
devices:
  - {id: pendant-wang, type: sos_button, site: sunrise, room: "101", resident: wang, model: P1, vendor: Acme}
  - {id: pendant-li, type: sos_button, site: sunrise, room: "102", resident: li, installed_on: 2025-11-03}
  - {id: door-101, type: door_sensor, site: sunrise, room: "101"}
  - {id: pendant-chen, type: sos_button, site: lotus, room: home-chen, resident: chen}
  - {id: spare-1, type: sos_button, site: sunrise, state: spare}
responders:
  - {id: nurse, name: Nurse Zhao, phone: "+8613800000009", roles: [nurse], sites: [sunrise]}
  - {id: warden, name: Warden Sun, phone: "+8613800000010", roles: [carer], sites: [lotus]}
escalation:
  policies:
    - id: lotus-first
      match: {sites: [lotus]}
      tiers: [{targets: [{responder: warden}], wait_s: 60}]
"""


def directory_config(db_path: Path, **storage: Any) -> CarelineConfig:
    """The directory above in a configuration file next to the database (read as a gateway reads it)."""
    path = db_path.parent / "directory.yaml"
    path.write_text(
        f"storage:\n  url: {store_url(db_path)}\n  directory_key_env: {KEY_ENV}\n" + DIRECTORY_YAML,
        encoding="utf-8",
    )
    config = load_config(path)
    if storage:
        config = config.model_copy(update={"storage": config.storage.model_copy(update=storage)})
    return config


def new_key() -> str:
    return Fernet.generate_key().decode()


@contextmanager
def directory_store(config: CarelineConfig, clock: FakeClock | None = None) -> Iterator[DirectoryStore]:
    """A migrated store on the config's SQLite file, its incident service started (and stopped after)."""
    engine = make_engine(config.storage.url)
    upgrade(engine)
    clock = clock or FakeClock(START)
    service = IncidentService(IncidentStore(engine, Directory(config), clock.now))
    service.start()
    try:
        yield DirectoryStore(service, config, KeySafeCipher.from_env(config.storage.directory_key_env))
    finally:
        service.close()
        engine.dispose()
