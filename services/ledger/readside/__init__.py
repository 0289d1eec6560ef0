"""The ledger's read side: every auditor query, in one place (docs/architecture.md §2).

One ``ReadSide`` per process holds one query object per resource, all on one connection pool;
routers and pages call ``read_side.<resource>.<query>(…)`` and nothing else reads the ledger.
"""

from __future__ import annotations

from sqlalchemy import Engine

from services.ledger.domain.custody import CustodyRules
from services.ledger.readside.containers import ContainerQueries
from services.ledger.readside.dashboard import DashboardQueries
from services.ledger.readside.deliveries import DeliveryQueries
from services.ledger.readside.events import EventQueries
from services.ledger.readside.log import LogQueries
from services.ledger.readside.proofs import ProofQueries
from services.ledger.readside.reports import ReportQueries


class ReadSide:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        self.containers = ContainerQueries(engine, rules)
        self.proofs = ProofQueries(engine)
        self.events = EventQueries(engine, rules)
        self.reports = ReportQueries(engine, rules)
        self.dashboard = DashboardQueries(engine, rules)
        self.deliveries = DeliveryQueries(engine)
        self.log = LogQueries(engine)
