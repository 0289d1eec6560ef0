"""Party users and a scoped auditor in the web UI, in a real browser (headless Chromium driven by
Playwright) against the services run as processes: each sees exactly its scope (the rule computed
independently in ``tests/integration/test_party_scope.py``), "our containers" by where they
stand, and who is signed in with what scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import text

from services.db.engine import make_engine
from services.registry.store import RegistryStore
from tests.integration.test_party_scope import PARTIES, lives, register_scoped_network, visible
from tests.support.browser import browser_page, chromium
from tests.support.services import ROOT, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "test-output" / "screenshots"


@dataclass
class System:
    ledger_url: str
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def system(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    settings = stack.settings()
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    devices, tokens, _ = register_scoped_network(registry)
    posted = lives()
    folder = tmp_path_factory.mktemp("party-ui")
    with running(settings, ["ingest", "consumer", "ledger"], folder) as services:
        with httpx.Client(base_url=str(services["ingest"].url), timeout=30) as ingest:
            for party, event in posted:
                headers = {"Authorization": f"Bearer {devices[party]}"}
                answer = ingest.post("/v1/events", json=event, headers=headers)
                assert answer.status_code == 202, answer.text

        def recorded() -> int:
            with engine.connect() as connection:
                count = connection.execute(text("SELECT count(*) FROM ledger.entries"))
                return int(count.scalar_one())

        wait_for(lambda: recorded() == len(posted), what="every event recorded")
        yield System(str(services["ledger"].url), tokens)
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_page(browser, 390) as opened:  # a phone's width
        yield opened


def sign_in(page: Page, system: System, reader: str) -> None:
    page.goto(system.ledger_url + "/ui/")
    page.fill("#token", system.tokens[reader])
    page.click("form[action='/ui/signin'] button[type=submit]")
    expect(page).to_have_url(system.ledger_url + "/ui/")


def test_a_plant_user_sees_its_containers_by_where_they_stand(system: System, page: Page) -> None:
    sign_in(page, system, "plant-c")
    expect(page.locator("h1")).to_have_text("Our containers")
    expect(page.locator("#signed-in")).to_contain_text("user-plant-c (party of plant-c)")
    expect(page.locator("#in_custody")).to_contain_text("PS-K2")
    expect(page.locator("#inbound")).to_contain_text("PS-K3")
    expect(page.locator("#in_custody")).not_to_contain_text("PS-K3")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "party-our-containers.png"), full_page=True)

    page.goto(system.ledger_url + "/ui/containers?q=PS-")
    listed = set(
        page.eval_on_selector_all("#results th a", "links => links.map(a => a.textContent)")
    )
    assert listed == visible(lives(), {"plant-c"})

    answer = page.goto(system.ledger_url + "/ui/containers/PS-K1")  # never came near plant-c
    assert answer is not None
    assert answer.status == 404
    expect(page.locator("main")).to_contain_text("No recorded events for container PS-K1.")


def test_a_scoped_regulator_sees_its_jurisdiction(system: System, page: Page) -> None:
    sign_in(page, system, "ny-regulator")
    scope = {party for party, (_, jurisdiction) in PARTIES.items() if jurisdiction == "US-NY"}
    expect(page.locator("#signed-in")).to_contain_text("scope: " + ", ".join(sorted(scope)))
    page.goto(system.ledger_url + "/ui/containers?q=PS-")
    listed = set(
        page.eval_on_selector_all("#results th a", "links => links.map(a => a.textContent)")
    )
    assert listed == visible(lives(), scope)
    assert "PS-K4" not in listed  # a California site's dropoff only
