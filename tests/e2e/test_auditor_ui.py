"""The auditor web UI in a real browser (headless Chromium driven by Playwright), and the
EPCIS-style event query, against the services run as processes on a simulated network.

Chromium is Debian's package (``scripts/ensure-prereqs.sh`` installs it); Playwright's own
browser downloads are never used. Screenshots go to ``test-output/screenshots/``.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from rich.console import Console
from sqlalchemy import text

from services.contract.epcis_identifiers import container_uri
from services.db.engine import make_engine
from services.ledger.adapters.signing_keys import create_key
from services.registry.store import RegistryStore
from services.settings import Settings
from services.simulation.runner import simulate
from services.simulation.scenario import ScenarioConfig, build_scenario
from tests.support import events as ev
from tests.support.browser import browser_page, chromium
from tests.support.network import Network, register_network
from tests.support.services import ROOT, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

SCREENSHOTS = ROOT / "test-output" / "screenshots"
CUSTODY_ORDER = ["site-a", "hauler-a", "hub-a", "hauler-b", "plant-a"]

Event = dict[str, Any]


@dataclass
class System:
    settings: Settings
    network: Network
    ledger_url: str
    container: str
    """The scripted container: a hub leg, a weight discrepancy and a corrected dropoff."""
    events: dict[str, Event]
    simulated: list[str]

    def sql(self, statement: str) -> list[Any]:
        engine = make_engine(self.settings.database_url, pool_size=1)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(statement)).all())
        finally:
            engine.dispose()

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.ledger_url, headers=self.network.auditor_headers(), timeout=30
        )


def post(client: httpx.Client, network: Network, device: str, event: Event) -> None:
    response = client.post("/v1/events", json=event, headers=network.headers(device))
    assert response.status_code == 202, response.text


def scripted_life(container: str, base: datetime) -> list[tuple[str, Event]]:
    def make(kind: str, hours: float, location: str, **fields: Any) -> Event:
        return ev.event(kind, container, hours, base=base, location_id=location, **fields)

    return [
        ("site-a-dev", make("dropoff", 0, "site-a:dock", chemistry="li_ion", battery_count=30)),
        ("site-a-dev", make("dropoff", 0.2, "site-a:dock", chemistry="li_ion", battery_count=9)),
        (
            "site-a-dev",
            make("sealed", 0.5, "site-a:dock", weight_kg=120.0, un_numbers=["UN3480"]),
        ),
        (
            "hauler-a-dev",
            make(
                "pickup",
                1,
                "site-a:dock",
                from_party="site-a",
                to_party="hauler-a",
                shipment_id="BOL-UI",
            ),
        ),
        ("hub-a-dev", make("handoff", 2, "hub-a:bay", from_party="hauler-a", to_party="hub-a")),
        ("hauler-b-dev", make("handoff", 3, "hub-a:bay", from_party="hub-a", to_party="hauler-b")),
        (
            "plant-a-dev",
            make(
                "intake",
                4,
                "plant-a:gate",
                from_party="hauler-b",
                to_party="plant-a",
                weight_kg=100.0,
            ),
        ),
    ]


@pytest.fixture(scope="module")
def system(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    folder = tmp_path_factory.mktemp("auditor-ui")
    key_file = folder / "keys" / "checkpoint.key"
    settings = stack.settings(
        signing_key_file=key_file, checkpoint_interval_s=0.3, checkpoint_entries=1
    )
    create_key(key_file, settings.log_origin)
    network = register_network(settings)
    names = ["ingest", "consumer", "ledger", "checkpointer"]
    with running(settings, names, folder) as services:
        ingest_url, ledger_url = services["ingest"].url, services["ledger"].url
        assert ingest_url is not None
        assert ledger_url is not None

        # A simulated network, posted through ingest like `custody simulate`.
        scenario = build_scenario(
            ScenarioConfig(
                run_id=f"ui{uuid.uuid4().hex[:6]}",
                now=datetime.now(UTC),
                containers=60,
                days=10,
                seed=7,
            )
        )
        engine = make_engine(settings.database_url, pool_size=1)
        report = simulate(
            ingest_url,
            RegistryStore(engine, cache_seconds=0),
            scenario,
            console=Console(file=io.StringIO()),
        )
        engine.dispose()
        assert report.rejected == 0, report.rejections

        # The scripted container, out of order, then the correction of its second dropoff.
        container = ev.unique_container("UI")
        life = scripted_life(container, datetime.now(UTC) - timedelta(hours=6))
        with httpx.Client(base_url=ingest_url, timeout=30) as ingest:
            for device, event in reversed(life):
                post(ingest, network, device, event)
            system = System(settings, network, ledger_url, container, {}, [])
            mistaken = life[1][1]

            def recorded(event_id: str) -> bool:
                return bool(
                    system.sql(f"SELECT 1 FROM ledger.entries WHERE event_id = '{event_id}'")
                )

            wait_for(lambda: recorded(mistaken["event_id"]), what="the mistaken dropoff")
            correction = ev.event(
                "correction",
                container,
                0.3,
                base=datetime.now(UTC) - timedelta(hours=6),
                location_id="site-a:dock",
                corrects_event_id=mistaken["event_id"],
                reason="did_not_occur",
            )
            post(ingest, network, "site-a-dev", correction)

        system.events = {
            "dropoff": life[0][1],
            "mistaken": mistaken,
            "sealed": life[2][1],
            "pickup": life[3][1],
            "to_hub": life[4][1],
            "from_hub": life[5][1],
            "intake": life[6][1],
            "correction": correction,
        }
        expected = scenario.summary.events + len(system.events)

        def settled() -> bool:
            size, signed = system.sql(
                "SELECT (SELECT count(*) FROM ledger.entries), "
                "(SELECT coalesce(max(tree_size), 0) FROM ledger.checkpoints)"
            )[0]
            return bool(size >= expected and signed == size)

        wait_for(settled, what="every event recorded and checkpointed", timeout=120)
        system.simulated = [
            row[0]
            for row in system.sql(
                "SELECT container_id FROM ledger.containers "
                f"WHERE container_id LIKE 'BX-{scenario.config.run_id}-%' ORDER BY container_id"
            )
        ]
        yield system


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_page(browser, 1280) as opened:
        yield opened


def sign_in(page: Page, system: System, path: str = "/ui/") -> None:
    page.goto(system.ledger_url + path)
    expect(page).to_have_url(f"{system.ledger_url}/ui/signin?next={path.replace('/', '%2F')}")
    page.fill("#token", system.network.auditor)
    page.click("form[action='/ui/signin'] button[type=submit]")


def lane_order(page: Page) -> list[str]:
    custodians: list[str] = page.eval_on_selector_all(
        "svg#timeline g.lane", "lanes => lanes.map(lane => lane.dataset.custodian)"
    )
    return custodians


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_auditor_signs_in_searches_and_reads_a_custody_timeline(system: System, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = system.ledger_url

    # Signed out, every page leads to the sign-in form; a device token is refused.
    page.goto(base + "/ui/containers")
    expect(page).to_have_url(f"{base}/ui/signin?next=%2Fui%2Fcontainers")
    page.fill("#token", system.network.tokens["site-a-dev"])
    page.click("form[action='/ui/signin'] button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text(
        "not a valid auditor, admin or party token"
    )

    sign_in(page, system)
    expect(page).to_have_url(base + "/ui/")
    cookie = next(c for c in page.context.cookies() if c["name"] == "custody_ui_token")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/ui")

    # Dashboard: the state counts are the read model's.
    counts = dict(system.sql("SELECT state, count(*) FROM ledger.containers GROUP BY state"))
    for state in ("open", "sealed", "in_transit", "received", "acknowledged", "processed"):
        shown = page.locator(f".state-count[data-state='{state}']").inner_text()
        assert int(shown.replace(",", "")) == counts.get(state, 0), state
    expect(page.locator("#anomaly-codes")).to_contain_text("weight_discrepancy")
    expect(page.locator("#checkpoint-size")).to_contain_text("entries")
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    # Keyboard only: Tab from the top of the page reaches the search form.
    page.keyboard.press("Tab")  # the skip link
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "quick-q":
            break
    assert page.evaluate("document.activeElement.closest('form[role=search]') !== null")
    page.keyboard.type(system.container)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/ui/containers?q={system.container}")
    expect(page.locator("#results tbody tr")).to_have_count(1)

    # Search with a filter: every container with a weight discrepancy, ours among them.
    page.goto(base + "/ui/containers")
    page.select_option("#f-anomaly", "weight_discrepancy")
    page.click("#search button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/containers\?.*anomaly=weight_discrepancy"))
    flagged = system.sql(
        "SELECT count(*) FROM ledger.containers WHERE 'weight_discrepancy' = ANY(anomalies)"
    )[0][0]
    expect(page.locator("#result-count")).to_have_text(str(flagged))
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(flagged)
    for index in range(flagged):
        expect(rows.nth(index)).to_contain_text("weight_discrepancy")

    # The container page: lanes in custody order, anomaly and correction markers, the table.
    page.click(f"#results a:text-is('{system.container}')")
    expect(page).to_have_url(f"{base}/ui/containers/{system.container}")
    assert lane_order(page) == CUSTODY_ORDER
    labels = page.eval_on_selector_all(
        "svg#timeline g.lane text.lane-label", "items => items.map(item => item.textContent)"
    )
    assert labels == CUSTODY_ORDER
    assert page.locator("svg#timeline a.event-marker").count() == len(system.events)
    expect(page.locator("svg#timeline rect.bar")).to_have_count(5)
    expect(page.locator("svg#timeline line.connector")).to_have_count(4)
    intake = page.locator(f"svg#timeline a[data-event-id='{system.events['intake']['event_id']}']")
    assert "weight_discrepancy" in (intake.get_attribute("data-anomalies") or "")
    assert "anomaly" in (intake.get_attribute("class") or "")
    expect(intake.locator("circle.anomaly-ring")).to_have_count(1)
    intake_lane = int(intake.get_attribute("data-lane") or -1)
    assert CUSTODY_ORDER[intake_lane] == "plant-a"

    mistaken_id = system.events["mistaken"]["event_id"]
    corrected = page.locator("svg#timeline a.event-marker.corrected")
    expect(corrected).to_have_count(1)
    assert corrected.get_attribute("data-event-id") == mistaken_id
    expect(corrected.locator("line.strike")).to_have_count(1)
    row = page.locator(f"tr#event-{mistaken_id}")
    assert "corrected" in (row.get_attribute("class") or "")
    struck = row.locator("s").first
    assert "line-through" in struck.evaluate("el => getComputedStyle(el).textDecorationLine")
    expect(row).to_contain_text("corrected by correction")
    expect(page.locator("#container-anomalies")).to_contain_text("weight_discrepancy")

    expect(page.locator("#integrity-badge")).to_contain_text("Verified against checkpoint")
    expect(page.locator("#integrity-badge")).to_contain_text(system.settings.log_origin)
    csv = page.request.get(base + f"/ui/containers/{system.container}/download/csv")
    assert csv.status == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert system.events["intake"]["event_id"] in csv.text()
    bundle = page.request.get(base + f"/ui/containers/{system.container}/download/bundle")
    assert bundle.status == 200
    assert bundle.json()["container_id"] == system.container
    certificate = page.locator("#downloads a[data-kind='certificate']")
    expect(certificate).to_have_count(1)
    pdf = page.request.get(base + (certificate.get_attribute("href") or ""))
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    page.screenshot(path=str(SCREENSHOTS / "container.png"), full_page=True)

    # The mass balance of the last 7 days, charted from GET /v1/reports/mass-balance.
    page.goto(base + "/ui/mass-balance")
    page.select_option("#mb-group", "plant")
    page.click("#window button[type=submit]")
    chart = page.locator("#mass-balance")
    expect(chart).to_contain_text("all containers")
    expect(chart).to_contain_text("plant-a")
    expect(chart).to_contain_text("taken in at a plant")
    assert chart.locator("svg.hbar rect").count() >= 8
    expect(page.locator("table")).to_contain_text(system.container)  # its weight discrepancy
    page.screenshot(path=str(SCREENSHOTS / "mass-balance.png"), full_page=True)

    # Phone width: the page itself never scrolls sideways.
    page.goto(f"{base}/ui/containers/{system.container}")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert lane_order(page) == CUSTODY_ORDER
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(SCREENSHOTS / "container-phone.png"), full_page=True)
    for path in ("/ui/", "/ui/containers", "/ui/anomalies", "/ui/mass-balance"):
        page.goto(base + path)
        assert no_horizontal_scroll(page), path

    # Signing out forgets the token.
    page.goto(base + "/ui/")
    page.click("form[action='/ui/signout'] button")
    expect(page).to_have_url(base + "/ui/signin")
    page.goto(base + "/ui/anomalies")
    expect(page).to_have_url(f"{base}/ui/signin?next=%2Fui%2Fanomalies")


def test_simulated_containers_draw_their_lanes_in_custody_order(system: System, page: Page) -> None:
    with system.api() as api:
        via_hub = []
        for container in system.simulated:
            trail = api.get(f"/v1/containers/{container}/custody").json()
            custodians = [interval["custodian"] for interval in trail["intervals"]]
            if "hub-01" in custodians:
                via_hub.append((container, trail))
            if len(via_hub) == 3:
                break
    assert via_hub, "the simulated network sent nothing through the hub"
    sign_in(page, system)
    for container, trail in via_hub:
        page.goto(f"{system.ledger_url}/ui/containers/{container}")
        order = list(dict.fromkeys(i["custodian"] for i in trail["intervals"]))
        assert lane_order(page) == order
        flagged = {a["event_id"] for a in trail["anomalies"] if a["event_id"]}
        markers = page.locator("svg#timeline a.event-marker.anomaly")
        expect(markers).to_have_count(len(flagged))
        expect(page.locator("svg#timeline a.event-marker")).to_have_count(len(trail["events"]))


def test_ui_pages_send_security_headers_and_need_a_session(system: System) -> None:
    with httpx.Client(base_url=system.ledger_url, timeout=30) as client:
        response = client.get("/ui/anomalies")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/signin?next=%2Fui%2Fanomalies"
        response = client.get("/ui/", headers={"Cookie": "custody_ui_token=bca_not-a-real-token"})
        assert response.status_code == 303
        assert "Max-Age=0" in response.headers["set-cookie"]
        signed = client.post(
            "/ui/signin", data={"token": system.network.auditor, "next": "https://evil.example/"}
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/ui/"
        assert "HttpOnly" in signed.headers["set-cookie"]
        assert "SameSite=Strict" in signed.headers["set-cookie"]
        client.cookies.clear()
        session = {"Cookie": f"custody_ui_token={system.network.auditor}"}
        page = client.get("/ui/", headers=session)
        assert page.status_code == 200
        assert "script" not in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
        assert "http://" not in page.text.replace(system.ledger_url, "")
        assert "https://" not in page.text
        css = client.get("/ui/static/ui.css")
        assert css.status_code == 200
        assert "url(http" not in css.text
        assert client.get("/ui/static/../app.py").status_code == 404
        missing = client.get("/ui/containers/NO-SUCH-CONTAINER", headers=session)
        assert missing.status_code == 404
        assert "No recorded events" in missing.text


def test_event_query_filters_like_epcis(system: System) -> None:
    events = system.events
    ids = {name: event["event_id"] for name, event in events.items()}

    def query(**params: Any) -> list[str]:
        with system.api() as api:
            response = api.get("/v1/events", params=params)
        assert response.status_code == 200, response.text
        return [item["event_id"] for item in response.json()["items"]]

    mine = query(MATCH_epc=system.container, limit=500)
    assert set(mine) == set(ids.values())
    assert query(MATCH_epc=container_uri(system.container)) == mine
    assert query(MATCH_epc=system.container[:-3] + "*") == mine
    assert query(MATCH_epc=f"{system.container},NOPE-000") == mine

    def steps(value: str) -> set[str]:
        return set(query(MATCH_epc=system.container, EQ_bizStep=value))

    # A handoff to a hub is received there; one from the hub to a hauler is consigned.
    assert steps("receiving") == {ids["to_hub"], ids["intake"]}
    assert steps("consigning") == {ids["pickup"], ids["from_hub"]}
    assert steps("collecting,packing") == {ids["dropoff"], ids["mistaken"], ids["sealed"]}
    assert steps("urn:epcglobal:cbv:bizstep:receiving") == steps("receiving")

    at_hub = {"MATCH_epc": system.container}
    assert set(query(**at_hub, EQ_readPoint="hub-a:bay")) == {ids["to_hub"], ids["from_hub"]}
    assert set(query(**at_hub, EQ_bizLocation="hub-a:bay")) == {ids["to_hub"]}

    start = datetime.fromisoformat(events["pickup"]["occurred_at"])
    window = query(
        MATCH_epc=system.container,
        GE_eventTime=start.isoformat(),
        LT_eventTime=(start + timedelta(hours=2)).isoformat(),
    )
    assert set(window) == {ids["pickup"], ids["to_hub"]}

    with system.api() as api:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"MATCH_epc": system.container, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = api.get("/v1/events", params=params).json()
            seen += [item["event_id"] for item in body["items"]]
            seqs = [item["seq"] for item in body["items"]]
            assert seqs == sorted(seqs)
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == mine
        assert pages == 3
        item = api.get("/v1/events", params={"MATCH_epc": system.container}).json()["items"][0]
        assert {"seq", "event_id", "entry_hash", "bizStep"} <= item.keys()

        bad = api.get("/v1/events", params={"EQ_bizStep": "shipping"})
        assert bad.status_code == 422
        assert "unknown bizStep" in bad.json()["detail"]
        naive = api.get("/v1/events", params={"GE_eventTime": "2026-11-02T08:00:00"})
        assert naive.status_code == 422
        assert api.get("/v1/events", params={"limit": 501}).status_code == 422
        assert api.get("/v1/events", params={"cursor": "abc"}).status_code == 400
    assert httpx.get(system.ledger_url + "/v1/events").status_code == 401
    assert (
        httpx.get(
            f"{system.ledger_url}/v1/events/{ids['intake']}",
            headers=system.network.auditor_headers(),
        ).json()["event_id"]
        == ids["intake"]
    )
