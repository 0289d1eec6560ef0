"""A small registered network: parties, devices with tokens, an auditor token."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.db.engine import make_engine
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryStore
from services.settings import Settings

PARTIES = {
    "site-a": PartyRole.SITE,
    "site-b": PartyRole.SITE,
    "hauler-a": PartyRole.HAULER,
    "hub-a": PartyRole.HUB,
    "hauler-b": PartyRole.HAULER,
    "plant-a": PartyRole.PLANT,
}


@dataclass
class Network:
    tokens: dict[str, str] = field(default_factory=dict)
    auditor: str = ""
    admin: str = ""

    def headers(self, device: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[device]}"}

    def auditor_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auditor}"}


def register_network(settings: Settings) -> Network:
    """One device per party, named ``<party>-dev``, plus a second site-a device."""
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    network = Network()
    for party_id, role in PARTIES.items():
        registry.add_party(party_id, party_id.title(), role)
        network.tokens[f"{party_id}-dev"] = registry.add_device(f"{party_id}-dev", party_id)
    network.tokens["site-a-dev2"] = registry.add_device("site-a-dev2", "site-a")
    network.auditor = registry.add_api_token("auditor-1", ApiRole.AUDITOR)
    network.admin = registry.add_api_token("admin-1", ApiRole.ADMIN)
    engine.dispose()
    return network
