"""Careline's exceptions, translated once at the edge.

CarelineError
 ├── ConfigError        the configuration is invalid or a secret is missing
 ├── StoreError         the incident store refused or lost a write
 └── BrokerError        the MQTT broker cannot be reached or refused us
"""


class CarelineError(Exception):
    """Base of every error Careline raises on purpose."""


class ConfigError(CarelineError):
    pass


class StoreError(CarelineError):
    pass


class BrokerError(CarelineError):
    pass
