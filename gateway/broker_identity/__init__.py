"""Per-device and per-hub identities on the broker (Mosquitto's dynamic-security plugin).

`model` says which topics each device and hub owns, `dynsec` talks to the plugin, `provisioning` keeps
the broker's clients and roles in step with the directory, `broker_files` writes a broker's first
configuration and `certs` a lab CA (docs/broker-identity.md).
"""

from gateway.broker_identity.dynsec import DynsecClient, DynsecError
from gateway.broker_identity.model import Acl, Identity, desired_identities
from gateway.broker_identity.provisioning import BrokerIdentity, Credentials

__all__ = [
    "Acl",
    "BrokerIdentity",
    "Credentials",
    "DynsecClient",
    "DynsecError",
    "Identity",
    "desired_identities",
]
