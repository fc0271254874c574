"""The message catalogue: every user-facing text (page, SMS, voice, e-mail) in every language we speak.

The texts live in `messages.yaml` next to this module, one entry per message id with one text per
language; translators edit only that file. It is checked when it is loaded (every language present and
non-empty, the same placeholders in each), so a broken translation stops the gateway at start-up rather
than garbling an alarm at night.

This module depends only on `common`, so every layer above it (channels, dashboard, CLI) can use it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

from common.settings import LANGUAGES, Language

__all__ = [
    "CATALOGUE_FILE",
    "LANGUAGES",
    "Catalogue",
    "CatalogueError",
    "Language",
    "label",
    "load",
    "normalize_language",
    "parse",
    "placeholders",
    "text",
]
CATALOGUE_FILE: Final = Path(__file__).resolve().parent / "messages.yaml"

# The same placeholder syntax the page's JavaScript fills in (ASCII names, as JS's \w).
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

Params = str | int


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the entry and what is wrong with it."""


@dataclass(frozen=True)
class Catalogue:
    entries: Mapping[str, Mapping[Language, str]]
    _json: dict[Language, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __contains__(self, msgid: object) -> bool:
        return msgid in self.entries

    def text(self, msgid: str, language: Language, **params: Params) -> str:
        """The text of `msgid` with its placeholders filled; a missing or unknown parameter is a bug."""
        template = self.entries[msgid][language]
        expected = placeholders(template)
        if set(params) != expected:
            raise KeyError(f"{msgid}: takes {sorted(expected)}, given {sorted(params)}")
        # One pass, so a value that itself contains "{x}" (a resident's name) is left as it is.
        return _PLACEHOLDER.sub(lambda match: str(params[match.group(1)]), template)

    def label(self, kind: str, code: str, language: Language) -> str:
        """The words for a code such as a rule or severity; an unknown code (a custom rule) is shown as
        it is, so nothing is hidden from the person reading it."""
        # A label is a plain word, read without filling placeholders, so it cannot fail mid-alarm.
        texts = self.entries.get(f"{kind}.{code.strip().lower()}")
        return texts[language] if texts else code

    def dictionary(self, language: Language) -> dict[str, str]:
        return {msgid: texts[language] for msgid, texts in self.entries.items()}

    def json(self, language: Language) -> bytes:
        """`dictionary(language)` as UTF-8 JSON, encoded once."""
        if language not in self._json:
            self._json[language] = json.dumps(self.dictionary(language), ensure_ascii=False).encode()
        return self._json[language]


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def normalize_language(value: str) -> Language:
    """A stored language tag as one we speak: any Chinese tag ("zh", "zh-cn", "zh_CN") is zh-CN."""
    return "zh-CN" if value.strip().lower().replace("_", "-").startswith("zh") else "en"


def parse(source: str, name: str = "<catalogue>") -> Catalogue:
    """Read and check a catalogue in the `messages.yaml` format."""
    try:
        document = yaml.load(source, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{name}: {exc}") from None
    if not isinstance(document, dict):
        raise CatalogueError(f"{name}: expected message ids mapped to their texts")
    return Catalogue({str(msgid): _entry(name, str(msgid), texts) for msgid, texts in document.items()})


def load(path: Path = CATALOGUE_FILE) -> Catalogue:
    return parse(path.read_text(encoding="utf-8"), str(path))


def _entry(name: str, msgid: str, texts: object) -> dict[Language, str]:
    where = f"{name}: {msgid}"
    if not isinstance(texts, dict):
        raise CatalogueError(f"{where}: expected one text per language ({', '.join(LANGUAGES)})")
    unknown = set(texts) - set(LANGUAGES)
    if unknown:
        raise CatalogueError(f"{where}: unknown language {sorted(map(str, unknown))}; use {list(LANGUAGES)}")
    entry: dict[Language, str] = {}
    for language in LANGUAGES:
        text = texts.get(language)
        if not isinstance(text, str) or not text.strip():
            raise CatalogueError(f"{where}: {language} text is missing (write it in double quotes)")
        _check_braces(where, language, text)
        entry[language] = text
    _check_same_placeholders(where, entry)
    return entry


def _check_braces(where: str, language: Language, text: str) -> None:
    # A brace outside a well-formed placeholder is a typo ("{user" or "{用户}") the page would show raw.
    if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
        raise CatalogueError(f"{where}: {language} has a malformed placeholder: {text!r}")


def _check_same_placeholders(where: str, entry: Mapping[Language, str]) -> None:
    english = placeholders(entry["en"])
    for language in LANGUAGES:
        found = placeholders(entry[language])
        if found != english:
            raise CatalogueError(
                f"{where}: {language} has placeholders {sorted(found)}, en has {sorted(english)}"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; an entry pasted twice must not silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


#: The catalogue every part of Careline speaks from, loaded and checked once at import.
CATALOGUE: Final = load()


def text(msgid: str, language: Language, **params: Params) -> str:
    return CATALOGUE.text(msgid, language, **params)


def label(kind: str, code: str, language: Language) -> str:
    return CATALOGUE.label(kind, code, language)
