"""`shopwatch demo` end to end: the real command, its shop, shoppers and incidents, then
the stored events checked through the API against what the simulator says it did."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SHOPWATCH, ServeProcess, clean_env

pytestmark = pytest.mark.slow

EVERY_KIND = {"page_view", "view_item_list", "search", "view_item", "add_to_cart",
              "remove_from_cart", "view_cart", "begin_checkout", "add_shipping_info",
              "add_payment_info", "purchase", "payment_declined", "refund", "login",
              "login_failed", "sign_up", "profile_updated", "survey_response",
              "support_contact"}


def two_free_ports() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no two consecutive free ports")


def read_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every stored event matching ``params``, paging by receive time."""
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    since = None
    while True:
        query = {"limit": 1000, "sort": "received_at", "order": "asc", **params}
        if since:
            query["received_from"] = since
        page = client.get("/api/v1/events", params=query)
        assert page.status_code == 200, page.text
        fresh = [e for e in page.json()["events"] if e["id"] not in seen]
        events.extend(fresh)
        seen.update(e["id"] for e in fresh)
        if len(page.json()["events"]) < 1000:
            return events
        since = page.json()["events"][-1]["received_at"]


def test_demo_runs_end_to_end(tmp_path: Path,
                              serve_process: Callable[[Path], ServeProcess]) -> None:
    data = tmp_path / "demo"
    port = two_free_ports()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SHOPWATCH), "demo", "--port", str(port), "--data", str(data), "--seed", "7",
             "--speed", "60", "--backfill", "2", "--no-browser"],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env(), cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while "demo shop:" not in log.read_text() or "backfill done" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        shop = httpx.get(f"http://127.0.0.1:{port + 1}/", timeout=10)
        assert shop.status_code == 200 and "<html" in shop.text.lower()
        time.sleep(30)  # live shoppers and incidents at 60x
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert "sign in as demo@example.com, password " in output
    assert "Traceback" not in output

    listed = subprocess.run([str(SHOPWATCH), "project", "list", "--data", str(data), "--json"],
                            capture_output=True, text=True, env=clean_env(), check=True)
    project = json.loads(listed.stdout)[0]
    assert project["name"] == "Demo shop"
    summary = json.loads((data / "demo-summary.json").read_text())
    assert summary["client"]["dropped"] == 0 and summary["client"]["rejected"] == 0
    # The live rate follows the shop's time of day (a few visits at night): any will do.
    assert summary["counts"]["visits"] > 0
    assert summary["incidents"], "no incident in 30 s at 60x"
    logged = [json.loads(line) for line in (data / "demo-incidents.jsonl").read_text()
              .splitlines()]
    # The log holds the backfill's incidents and every live one, as the summary says.
    assert [i for i in logged if not i.get("backfill")] == summary["incidents"]
    assert {i["kind"] for i in logged} <= {"slow_checkout", "gateway_errors", "image_host_down",
                                           "credential_stuffing", "card_testing"}

    server = serve_process(data)
    client = httpx.Client(base_url=server.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {project['secret_key']}"})
    counts = client.get("/api/v1/event-counts", params={
        "name": sorted(EVERY_KIND), "range": "7d"}).json()["counts"]
    missing = [c["name"] for c in counts if c["events"] == 0]
    assert not missing, f"no {missing} events"

    purchases = read_all(client, name="purchase")
    live = {e["params"]["transaction_id"] for e in purchases
            if not e["params"]["transaction_id"].startswith("H-")}
    past = [e for e in purchases if e["params"]["transaction_id"].startswith("H-")]
    # Every order the shoppers completed is stored, once, and nothing else.
    assert live == set(summary["orders"])
    assert len(live) == len([e for e in purchases if e["params"]["transaction_id"] in live])
    assert len(past) == summary["backfill"]["orders"]
    for event in purchases[:50]:
        params = event["params"]
        assert params["currency"] == "EUR" and params["value"] > 0 and params["items"]
    refunds = {e["params"]["transaction_id"] for e in read_all(client, name="refund")}
    assert set(summary["refunded"]) <= refunds
    # Every declined payment the shoppers (and card testers) met is stored, and the
    # backfill's too.
    declined = read_all(client, name="payment_declined")
    live_declined = [e for e in declined
                     if not e["params"]["transaction_id"].startswith("H-")]
    counts_ = summary["counts"]
    expected = (sum(v for k, v in counts_.items()
                    if k.startswith("declined_") and not k.startswith("declined_http_"))
                + counts_.get("card_tests_declined", 0))
    assert len(live_declined) == expected
    assert len(declined) - len(live_declined) == summary["backfill"]["counts"].get(
        "payment_declined", 0)
    client.close()
    server.proc.terminate()  # the next demo needs the data directory's lock
    server.proc.wait(timeout=30)

    # A second run reuses the data: same project, same login, no second backfill.
    again = subprocess.run(
        [str(SHOPWATCH), "demo", "--port", str(two_free_ports()), "--data", str(data),
         "--speed", "60", "--backfill", "2", "--no-browser", "--duration", "2"],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "backfilling" not in again.stdout
    relisted = subprocess.run([str(SHOPWATCH), "project", "list", "--data", str(data),
                               "--json"], capture_output=True, text=True, env=clean_env())
    assert json.loads(relisted.stdout) == json.loads(listed.stdout)
