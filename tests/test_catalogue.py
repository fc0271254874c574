"""The one message catalogue: every alarm type, outcome, event kind, severity and status has its words in
English and Simplified Chinese; the page, SMS, calls and e-mails all speak from it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
import unicodedata
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from harness import live_gateway, new_config
from services import Mosquitto

import rules
from dashboard.api import STATIC
from devices.model import EventKind
from gateway.catalogue import CATALOGUE, CATALOGUE_FILE, LANGUAGES, CatalogueError, Language, parse
from gateway.directory.changes import SINGULAR
from gateway.escalation.escalator import CHANNEL_FAILING_RULE
from gateway.incidents.duty import CONSOLE_UNSTAFFED_RULE
from gateway.incidents.schema import IncidentStatus, Outcome
from gateway.reassurance.plan import HELP_RULE, NO_ANSWER_RULE
from gateway.visits.scheduler import VISIT_MISSED_RULE
from rules.model import Severity

_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def rule_names() -> set[str]:
    """Every rule a gateway can raise an incident under: the `name` of each rule class in rules/ (and
    rules/wellbeing/), the escalator's channel-health alarm, and the care workflows' alarms raised by
    the gateway core (a missed visit, the daily call, an unstaffed console)."""
    names = {CHANNEL_FAILING_RULE, VISIT_MISSED_RULE, HELP_RULE, NO_ANSWER_RULE, CONSOLE_UNSTAFFED_RULE}
    for found in pkgutil.walk_packages(rules.__path__, "rules."):
        module = importlib.import_module(found.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            name = getattr(cls, "name", None)
            if cls.__module__ == module.__name__ and isinstance(name, str) and hasattr(cls, "on_event"):
                names.add(name)
    return names


def untranslated(texts: Mapping[Language, str]) -> bool:
    """Missing, empty, or Chinese identical to English although the text has words ("{user} · {role}"
    rightly reads the same in both)."""
    if any(not texts.get(language, "").strip() for language in LANGUAGES):
        return True
    letters = [c for c in _PLACEHOLDER.sub("", texts["en"]) if unicodedata.category(c).startswith("L")]
    return bool(letters) and texts["zh-CN"] == texts["en"]


CODES = {
    "rule": sorted(rule_names()),
    "outcome": [outcome.value for outcome in Outcome],
    "event": [kind.value for kind in EventKind],
    "severity": [severity.value for severity in Severity],
    "status": [status.value for status in IncidentStatus],
}


def test_the_rule_collection_finds_alarm_and_wellbeing_rules() -> None:
    # Guards the enumeration below: a collector that found nothing would let every rule through.
    assert {"sos", "door_left_open", "inactivity", "activity_baseline", CHANNEL_FAILING_RULE} <= rule_names()


@pytest.mark.parametrize(("kind", "code"), [(kind, code) for kind, codes in CODES.items() for code in codes])
def test_every_code_has_words_in_every_language(kind: str, code: str) -> None:
    msgid = f"{kind}.{code}"
    assert msgid in CATALOGUE, f"{msgid} is missing from gateway/catalogue/messages.yaml"
    texts = CATALOGUE.entries[msgid]
    assert not untranslated(texts), f"{msgid} is not translated: {texts}"


def test_every_entry_is_translated() -> None:
    assert [msgid for msgid, texts in CATALOGUE.entries.items() if untranslated(texts)] == []


def _page_keys() -> tuple[set[str], set[str]]:
    """The message ids the page's files name literally, and the prefixes of the codes it labels."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for path in [*STATIC.glob("*.js"), *STATIC.glob("*.html")]:
        source = path.read_text(encoding="utf-8")
        keys |= set(re.findall(r'data-i18n(?:-title|-aria-label)?="([^"]+)"', source))
        keys |= set(re.findall(r'\bt\(\s*"([\w.-]+)"', source))
        # The administration page declares its fields' and actions' labels as data; the other pages name
        # their heading to startPage (page.js builds the header).
        keys |= set(re.findall(r'\b(?:i18n|endKey|heading):\s*"([\w.-]+)"', source))
        for first, second in re.findall(r'\bt\(\s*\w+\s*\?\s*"([\w.-]+)"\s*:\s*"([\w.-]+)"', source):
            keys |= {first, second}
        prefixes |= set(re.findall(r'\blabel\(\s*"(\w+)"', source))
        prefixes |= set(re.findall(r"\bt\(\s*`(\w+)\.\$\{", source))
    return keys, prefixes


def test_every_text_the_page_names_is_in_the_catalogue() -> None:
    keys, prefixes = _page_keys()
    assert {"app.title", "live.offline", "resolve.needNote", "review.points"} <= keys
    assert sorted(keys - set(CATALOGUE.entries)) == []
    known_prefixes = {msgid.split(".", 1)[0] for msgid in CATALOGUE.entries}
    assert {"rule", "severity", "status", "outcome"} <= prefixes <= known_prefixes


def test_every_text_the_administration_page_builds_is_in_the_catalogue() -> None:
    source = (STATIC / "admin.js").read_text(encoding="utf-8")
    singulars = re.findall(r'\bsingular:\s*"(\w+)"', source)
    endings = re.findall(r'\bendKey:\s*"([\w.-]+)"', source)
    assert {"resident", "device", "site", "responder", "user"} <= set(singulars)
    assert {"admin.discharge", "admin.retire", "admin.withdraw"} <= set(endings)
    built = {f"admin.{verb}.{s}" for s in singulars for verb in ("new", "edit")}
    built |= {f"{ending}.confirm" for ending in endings}
    built |= {f"admin.pairing.by.{basis}" for basis in ("model", "exposes", "unknown")}
    # Every audit action of the directory a history can show: how each kind's entries end differs.
    ending = {"devices": "retired", "residents": "discharged"}
    built |= {
        f"history.directory.{SINGULAR[kind]}.{verb}"
        for kind in SINGULAR
        for verb in ("added", "changed", ending.get(kind, "removed"))
    }
    built |= {
        "history.directory.imported",
        "history.directory.resident.key_safe_revealed",
        "history.directory.user.added",
        "history.directory.user.changed",
    }
    assert sorted(built - set(CATALOGUE.entries)) == []


def test_the_page_keeps_no_dictionary_of_its_own() -> None:
    # Chinese in a script means a text that bypasses the catalogue; the one exception is the language
    # picker's name of each language in that language, which reads the same whatever the page's language.
    for path in STATIC.glob("*.js"):
        source = path.read_text(encoding="utf-8").replace('"简体中文"', "")
        assert not re.search(r"[\u4e00-\u9fff]", source), f"{path.name} has texts of its own"
        assert not re.search(r"\\u[4-9][0-9a-f]{3}", source, re.IGNORECASE), f"{path.name} hides Chinese"


def test_text_fills_placeholders_once_and_insists_on_them() -> None:
    catalogue = parse('greet: {en: "Hello {name}", zh-CN: "{name}，您好"}')
    assert catalogue.text("greet", "zh-CN", name="王丽") == "王丽，您好"
    assert catalogue.text("greet", "en", name="{name}") == "Hello {name}"
    with pytest.raises(KeyError, match="greet"):
        catalogue.text("greet", "en")
    with pytest.raises(KeyError, match="greet"):
        catalogue.text("greet", "en", name="x", extra="y")


def test_an_unknown_code_is_shown_as_it_is() -> None:
    assert CATALOGUE.label("rule", "water_leak", "zh-CN") == "water_leak"
    assert CATALOGUE.label("rule", " Fall ", "en") == CATALOGUE.text("rule.fall", "en")


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ('a: {en: "Hi {name}", zh-CN: "你好"}', r"a: zh-CN has placeholders \[\], en has \['name'\]"),
        ('a: {en: "Hi", zh-CN: "你好 {who}"}', r"a: zh-CN has placeholders \['who'\]"),
        ('a: {en: "Hi"}', "a: zh-CN text is missing"),
        ('a: {en: "Hi", zh-CN: "  "}', "a: zh-CN text is missing"),
        ('a: {en: "Hi", zh-CN: "你好", zh_CN: "你好"}', r"a: unknown language \['zh_CN'\]"),
        ("a: {en: No, zh-CN: 不}", "a: en text is missing"),
        ('a: {en: "Hi {name", zh-CN: "你好 {name"}', "a: en has a malformed placeholder"),
        ('a: {en: "Hi {用户}", zh-CN: "你好 {用户}"}', "a: en has a malformed placeholder"),
        ('a: "Hi"', "a: expected one text per language"),
        ("- a\n- b", "expected message ids mapped to their texts"),
        ('a: {en: "Hi", zh-CN: "你好"}\na: {en: "Yo", zh-CN: "哟"}', "a appears twice"),
        ('a: {en: "Hi", zh-CN: "你好"', "test.yaml"),
    ],
)
def test_a_broken_catalogue_is_refused_with_the_entry_named(source: str, complaint: str) -> None:
    with pytest.raises(CatalogueError, match=complaint):
        parse(source, "test.yaml")


def test_the_catalogue_ships_with_the_package() -> None:
    # setuptools leaves out any data file that pyproject.toml does not list: `pip install .` would then
    # give a gateway that cannot start.
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = CATALOGUE_FILE.relative_to(root / "gateway")
    assert any(shipped.match(pattern) for pattern in patterns["gateway"])


async def test_the_dashboard_serves_the_catalogue_to_anyone_and_revalidates_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with (
        live_gateway(new_config(mosquitto.url, tmp_path)) as live,
        httpx.AsyncClient(base_url=live.base_url) as stranger,
    ):
        response = await stranger.get("/api/catalogue/zh-CN")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == CATALOGUE.dictionary("zh-CN")
        assert response.json()["rule.inactivity"] == "长时间无活动"
        assert "public" in response.headers["cache-control"]
        etag = response.headers["etag"]
        again = await stranger.get("/api/catalogue/zh-CN", headers={"If-None-Match": etag})
        assert (again.status_code, again.content) == (304, b"")
        english = await stranger.get("/api/catalogue/en", headers={"If-None-Match": etag})
        assert english.status_code == 200
        assert english.json()["rule.inactivity"] == CATALOGUE.text("rule.inactivity", "en")
        assert (await stranger.get("/api/catalogue/fr")).status_code == 422
