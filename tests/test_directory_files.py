"""Directory files: YAML and CSV imports are previewed, refused whole with located errors, applied in
one piece; exports import back to the same state; spreadsheets' quirks (BOM, GBK, formulas) are handled."""

from __future__ import annotations

from pathlib import Path

import pytest
from directory_fixtures import KEY_ENV, directory_config, directory_store, new_key
from typer.testing import CliRunner

from careline.cli import app
from common.errors import InvalidInputError, Problem
from gateway.config import CarelineConfig
from gateway.directory.changes import KINDS, Incoming
from gateway.directory.store import DirectoryStore
from gateway.directory.tables import export_csv, parse_csv, template
from gateway.directory.transfer import MAX_IMPORT_BYTES, DirectoryFile, export_yaml, parse_yaml

RESIDENTS_EN = "id,name,site,room,risks,contact1_name,contact1_phones\n"
DEVICES_ZH = "编号,类型,站点,房间,老人,型号\n"


@pytest.fixture(autouse=True)
def directory_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, new_key())


@pytest.fixture
def config(tmp_path: Path) -> CarelineConfig:
    return directory_config(tmp_path / "careline.db")


def imported(store: DirectoryStore, parsed: DirectoryFile, actor: str = "user:admin") -> dict[str, object]:
    return store.apply_now(store.importing(parsed.incoming, None), actor, source=parsed.source).as_json()


def refusal(store: DirectoryStore, parsed: DirectoryFile) -> list[Problem]:
    with pytest.raises(InvalidInputError) as refused:
        store.plan(store.importing(parsed.incoming, None), "user:admin")
    return parsed.locate(refused.value.problems)


def csv_refusal(data: bytes, kind: str | None = None) -> list[Problem]:
    with pytest.raises(InvalidInputError) as refused:
        parse_csv(data, "upload.csv", kind)  # type: ignore[arg-type]
    return list(refused.value.problems)


def export_all(store: DirectoryStore) -> str:
    return export_yaml(store.export_rows(KINDS), exported_by="test", at=store.now())


def test_import_export_import_is_the_identity(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        # A discharged resident, a retired device and a spare travel through the file as they are.
        sections = store.load()
        leaving = Incoming(
            residents=tuple(r for r in sections.residents if r.id != "chen"),
            devices=tuple(d for d in sections.devices if d.id not in ("door-101", "pendant-chen")),
        )
        store.apply_now(store.importing(leaving, None), "user:admin")
        before = store.load()
        assert {r.status for r in before.residents} == {"active", "discharged"}
        exported = export_all(store)
        assert "4711" not in exported
        assert "key_safe_code: enc:" in exported
        assert (
            store.plan(store.importing(parse_yaml(exported, "x.yaml").incoming, None), "u").changes.changes
            == ()
        )
        assert imported(store, parse_yaml(exported, "x.yaml"))["devices"] == {
            "added": [],
            "changed": [],
            "removed": [],
        }
        assert store.load() == before
        assert export_all(store).split("\n", 3)[3] == exported.split("\n", 3)[3]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize("kind", ["residents", "devices"])
def test_a_csv_export_imports_back_to_the_same_state(
    config: CarelineConfig, kind: str, language: str
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        before = store.load()
        data = export_csv(kind, store.export_rows([kind])[kind], language)  # type: ignore[arg-type,list-item]
        assert data.startswith(b"\xef\xbb\xbf")
        assert imported(store, parse_csv(data, "x.csv"))[kind] == {"added": [], "changed": [], "removed": []}
        assert store.load() == before


def test_a_chinese_csv_of_devices_reads_words_and_codes_alike(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        rows = store.export_rows(["devices"])["devices"]
        text = export_csv("devices", rows, "zh-CN").decode("utf-8-sig")
        assert text.startswith("编号,类型,协议,站点")
        assert "紧急呼叫按钮" in text
        assert "备用" in text
        extra = "fall-201,fall_sensor,careline,sunrise,201,,,,,,使用中\r\n"
        result = imported(store, parse_csv((text + extra).encode("utf-8"), "设备.csv"))  # no BOM this time
        assert result["devices"] == {"added": ["fall-201"], "changed": [], "removed": []}


def test_a_failing_row_applies_nothing_and_every_problem_has_its_row_and_column(
    config: CarelineConfig,
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        before = store.load()
        rows = (
            "wang,王秀英,sunrise,101,wandering,,\n"
            "li,李建国,sunrise,102,falls,李明,+86 138 0000 0001\n"
            "chen,陈阿婆,lotus,home-chen,,,\n"
            "zhou,周桂兰,sunrise,201,burns,,\n"
            "li,李四,sunrise,101,,,\n"
            "wu,吴芳,lotus,101,,王,13800000001\n"
        )
        parsed_or_problems = csv_refusal((RESIDENTS_EN + rows).encode())
        assert [(p.row, p.column, p.code) for p in parsed_or_problems] == [
            (5, "risks", "csv_unknown_value"),
            (7, "contact1_phones", "phone_not_e164"),
        ]
        fixed = rows.replace("burns", "scalds").replace("13800000001", "+8613800000001")
        problems = refusal(store, parse_csv((RESIDENTS_EN + fixed).encode(), "r.csv"))
        assert [(p.row, p.column, p.code) for p in problems] == [
            (6, "id", "duplicate_id"),
            (7, "room", "resident_room_of_other_site"),
        ]
        assert (
            problems[1].message == "resident 'wu' is at site 'lotus' but room '101' belongs to site 'sunrise'"
        )
        assert store.load() == before


def test_located_errors_speak_the_users_language_where_they_are_ours(config: CarelineConfig) -> None:
    from gateway.directory.transfer import describe

    problems = csv_refusal((DEVICES_ZH + "p9,吸尘器,sunrise,101,,\n").encode())
    assert describe(problems[0], "zh-CN").startswith("row 2, column 类型: 未知的值 '吸尘器'")


def test_a_device_bound_to_a_room_of_another_site_is_located(config: CarelineConfig) -> None:
    with directory_store(config) as store:
        store.seed(config)
        rows = store.export_rows(["devices"])["devices"]
        text = export_csv("devices", rows, "en").decode("utf-8-sig")
        text += "door-x,door_sensor,careline,lotus,102,,,,,,active\r\n"
        [found] = refusal(store, parse_csv(text.encode(), "d.csv"))
        assert (found.row, found.column, found.code) == (7, "room", "device_room_of_other_site")


def test_formulas_are_neutralised_on_export_and_refused_on_import_in_free_text(
    config: CarelineConfig,
) -> None:
    with directory_store(config) as store:
        store.seed(config)
        store.apply_now(
            lambda d: d.model_copy(
                update={
                    "residents": tuple(
                        r.model_copy(update={"notes": '=HYPERLINK("http://x")'}) if r.id == "wang" else r
                        for r in d.residents
                    )
                }
            ),
            "user:admin",
        )
        data = export_csv("residents", store.export_rows(["residents"])["residents"], "en")
        assert "'=HYPERLINK" in data.decode("utf-8-sig")
        assert ",'+8613800000001," in data.decode("utf-8-sig")  # phones too: a spreadsheet eats the +
        # Neutralised cells read back as the text they were.
        assert imported(store, parse_csv(data, "r.csv"))["residents"]["changed"] == []
    for cell in ("=1+1", "+cmd", "-2", "@SUM(A1)"):
        [found] = csv_refusal((RESIDENTS_EN + f"wang,{cell},sunrise,101,,,\n").encode())
        assert (found.row, found.column, found.code) == (2, "name", "csv_formula")


def test_a_gbk_file_is_refused_saying_it_is_gbk() -> None:
    data = (RESIDENTS_EN + "wang,王秀英,sunrise,101,,,\n").encode("gb18030")
    [found] = csv_refusal(data)
    assert found.code == "file_is_gbk"
    assert "GBK/GB18030" in found.message


def test_an_oversized_file_is_refused_before_it_is_read() -> None:
    [found] = csv_refusal(b"x" * (MAX_IMPORT_BYTES + 1))
    assert found.code == "file_too_large"


def test_the_template_has_headers_in_either_language_and_both_are_read() -> None:
    for language, first in (("en", "id,name,site"), ("zh-CN", "编号,姓名,站点")):
        data = template("residents", language)
        assert data.decode("utf-8-sig").startswith(first)
        filled = data + "wang,王秀英,sunrise,101,,,,,,,,是,,,,李明,儿子,+8613800000001,中文;英语\r\n".encode()
        [resident] = parse_csv(filled, "t.csv").incoming.residents or ()
        assert resident.check_in_consent is True
        assert resident.contacts[0].languages == ("zh-CN", "en")


def test_a_header_that_is_neither_residents_nor_devices_is_refused() -> None:
    [found] = csv_refusal(b"id,colour\nx,red\n")
    assert found.code == "csv_kind_unknown"
    [found] = csv_refusal(b"id,name,site,colour\nx,X,s,red\n", "residents")
    assert (found.row, found.column, found.code) == (1, "colour", "csv_unknown_column")


def test_a_yaml_import_is_located_by_line_and_refuses_sections_that_are_not_the_directory(
    config: CarelineConfig,
) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_yaml("broker: {url: mqtt://x}\nsites: []\n", "x.yaml")
    assert refused.value.problems[0].code == "not_a_directory_section"
    with directory_store(config) as store:
        store.seed(config)
        parsed = parse_yaml(
            "devices:\n"
            "  - {id: a, type: sos_button, site: sunrise}\n"
            "  - {id: b, type: sos_button, site: nowhere}\n",
            "d.yaml",
        )
        [found] = refusal(store, parsed)
        assert (found.line, found.loc, found.code) == (3, ("devices", 1, "site"), "device_unknown_site")


def test_careline_directory_import_previews_and_applies_only_with_yes(
    config: CarelineConfig, tmp_path: Path
) -> None:
    runner = CliRunner()
    config_file = Path(config.source or "")
    csv_file = tmp_path / "devices.csv"
    exported = runner.invoke(
        app,
        [
            "directory",
            "export",
            "--config",
            str(config_file),
            "--kind",
            "devices",
            "--format",
            "csv",
            "-o",
            str(csv_file),
        ],
    )
    assert exported.exit_code == 0, exported.output
    csv_file.write_bytes(csv_file.read_bytes() + b"fall-201,fall_sensor,careline,sunrise,201,,,,,,active\r\n")
    preview = runner.invoke(app, ["directory", "import", str(csv_file), "--config", str(config_file)])
    assert preview.exit_code == 0, preview.output
    assert "devices: 1 added, 0 changed, 0 retired" in preview.output
    assert "nothing was applied" in preview.output
    with directory_store(config) as store:
        assert "fall-201" not in {d.id for d in store.load().devices}
    applied = runner.invoke(
        app, ["directory", "import", str(csv_file), "--config", str(config_file), "--yes"]
    )
    assert applied.exit_code == 0, applied.output
    with directory_store(config) as store:
        assert "fall-201" in {d.id for d in store.load().devices}
        assert store.history("device", "fall-201")[0].actor.startswith("cli:")
    csv_file.write_bytes(csv_file.read_bytes() + b"fall-x,fall_sensor,careline,sunrise,999,,,,,,active\r\n")
    refused = runner.invoke(
        app, ["directory", "import", str(csv_file), "--config", str(config_file), "--yes"]
    )
    assert refused.exit_code == 1
    assert "row 8, column room: device 'fall-x' names unknown room '999' of site 'sunrise'" in refused.output


def test_careline_directory_export_writes_yaml_that_the_import_finds_unchanged(
    config: CarelineConfig, tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "exported.yaml"
    config_file = str(config.source)
    assert runner.invoke(app, ["directory", "export", "--config", config_file, "-o", str(out)]).exit_code == 0
    again = runner.invoke(app, ["directory", "import", str(out), "--config", config_file])
    assert again.exit_code == 0, again.output
    assert "residents: 0 added, 0 changed, 0 discharged" in again.output
    assert runner.invoke(
        app, ["directory", "template", "--kind", "devices", "--language", "en"]
    ).output.startswith("\ufeffid,type,profile")
