"""Residents' key-safe codes, encrypted at rest with Fernet (AES-128-CBC with an HMAC-SHA256, from the
`cryptography` package).

The key comes from the environment variable that `storage.directory_key_env` names: one or more
url-safe base64 Fernet keys separated by commas. The first key encrypts; every key decrypts, so a key is
rotated by putting the new one first and re-saving (docs/directory.md). An export carries a code only
sealed, as `enc:<token>`, which imports back into any gateway holding the same key.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from common.errors import ConfigError
from common.settings import secret_from_env

SEALED = "enc:"


class KeySafeCipher:
    def __init__(self, keys: str | None, *, env_name: str | None = None) -> None:
        self._env_name = env_name
        self._fernet: MultiFernet | None = None
        if keys is not None:
            try:
                self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
            except (ValueError, TypeError):
                raise ConfigError(
                    f"environment variable {env_name} does not hold Fernet keys (32 url-safe base64 bytes "
                    "each, comma-separated); make one with `careline directory new-key`"
                ) from None

    @classmethod
    def from_env(cls, env_name: str | None) -> KeySafeCipher:
        return cls(secret_from_env(env_name), env_name=env_name)

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def seal(self, code: str) -> str:
        return self._cipher().encrypt(code.encode()).decode("ascii")

    def open(self, token: str, *, whose: str) -> str:
        """The code sealed in `token` (stored, or `enc:<token>` from an export) of resident `whose`."""
        try:
            return self._cipher().decrypt(token.removeprefix(SEALED).encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise ConfigError(
                f"the key-safe code of resident {whose!r} was not sealed with the key in {self._env_name} "
                "(exported from another gateway, or the key was changed)"
            ) from None

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            raise ConfigError(
                "key-safe codes are kept only encrypted: set storage.directory_key_env to the name of an "
                "environment variable holding a Fernet key (`careline directory new-key` makes one)"
            )
        return self._fernet


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")
