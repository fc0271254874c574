"""What the administration page relies on from the API: form refusals worded in the user's language and
located at their field, and a rota changed for several responders in one audited change."""

from __future__ import annotations

from pydantic import ValidationError

from gateway.config import ResidentConfig, problems_of
from gateway.directory.transfer import problem_json


def _refusal(payload: dict[str, object]) -> list[dict[str, object]]:
    try:
        ResidentConfig.model_validate(payload)
    except ValidationError as exc:
        return [problem_json(p, "zh-CN") for p in problems_of(exc)]
    raise AssertionError("accepted")


def test_a_form_refusal_names_each_field_in_chinese() -> None:
    problems = _refusal({"id": "bad id!", "site": "night", "birth_year": "abc", "extra": 1})
    by_field = {p["loc"][0]: p["message"] for p in problems}
    assert by_field["name"] == "必填"
    assert by_field["id"].startswith("格式不正确")
    assert by_field["birth_year"] == "必须是整数"
    assert by_field["extra"] == "不是可识别的字段"
