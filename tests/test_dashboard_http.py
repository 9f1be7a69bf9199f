"""The dashboard over real HTTP: sign-in, sessions, CSRF, lock-out, roles, and a sweep
proving every route but the public ones refuses anonymous callers and ingest keys."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from shopwatch.web.app import create_api
from shopwatch.web.sections import PAGES
from tests.conftest import ADMIN_EMAIL, PASSWORD, VIEWER_EMAIL, Live, csrf_of, sign_in

# Ingest routes take the ingest key (tests/test_ingest_http.py, test_otlp.py cover them).
PUBLIC = {("POST", "/api/v1/events"), ("POST", "/api/v1/rum"), ("GET", "/rum.js"),
          ("GET", "/rum-trace.js"), ("GET", "/rum-survey.js"),
          ("POST", "/v1/traces"), ("POST", "/v1/metrics"), ("POST", "/v1/logs"),
          ("GET", "/status/acme"), ("GET", "/api/v1/status/acme"),
          *((m, p) for m in ("GET", "POST", "HEAD")
            for p in ("/api/v1/heartbeat/x", "/api/v1/heartbeat/x/fail")),
          ("GET", "/healthz"), ("GET", "/metrics"),
          ("GET", "/login"), ("POST", "/login")}
# Probe routes take a probe token and nothing else: an ingest key is 401 there too.
PROBE = {("GET", "/api/v1/probe/assignments"), ("POST", "/api/v1/probe/results")}
SAMPLE = {"project_id": "1", "kind": "ingest", "action": "rotate", "user_id": "1",
          "name": "home", "slug": "acme", "token": "x", "window_id": "1",
          "file": "20261122T120000Z-pay.png", "channel_id": "1",
          "alert_id": "1", "incident_id": "1", "silence_id": "1",
          "audience": "technical", "schedule_id": "1", "trace_id": "a" * 32,
          "finding_id": "1"}


def _routes(routes: list[Any]) -> list[APIRoute]:
    out: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif hasattr(route, "original_router"):  # FastAPI keeps included routers whole
            out.extend(_routes(route.original_router.routes))
    return out


def every_route(live: Live) -> list[tuple[str, str]]:
    """(method, path) of every route the app has, path parameters filled in."""
    app = create_api(live.runtime, manage_runtime=False)
    found = []
    for route in _routes(list(app.routes)):
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLE[m.group(1)], route.path)
        found.extend((method, path) for method in sorted(route.methods))
    return found


def test_route_sweep_refuses_anonymous_callers_and_ingest_keys(dashboard: Live) -> None:
    routes = every_route(dashboard)
    assert len(routes) > 30 and ("GET", "/openapi.json") in routes
    assert ("GET", "/api/v1/security") in routes and ("GET", "/security") in routes
    assert ("GET", "/api/v1/service-desk") in routes
    assert ("GET", "/business/service-desk") in routes
    assert ("GET", "/api/v1/customers") in routes and ("GET", "/api/v1/customers/list") in routes
    assert ("GET", "/business/customers") in routes
    assert ("GET", "/api/v1/feedback") in routes and ("GET", "/business/feedback") in routes
    assert ("GET", "/api/v1/feedback/comments") in routes
    ingest_key = dashboard.runtime.state.get_project("shop-a").ingest_key
    anonymous = dashboard.client()
    with_ingest_key = dashboard.client(ingest_key)
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        checked += 1
        if (method, path) in PROBE:
            for client in (anonymous, with_ingest_key):
                response = client.request(method, path)
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.json()["error"]["code"] == "unauthorized"
            continue
        response = anonymous.request(method, path)
        if path.startswith("/api/v1/") or path == "/openapi.json":
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"]["code"] == "unauthorized"
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next="), (method, path)
        keyed = with_ingest_key.request(method, path)
        assert keyed.status_code == 403, (method, path, keyed.status_code)
    assert checked >= 30
    # The public routes stay public.
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/app.css").status_code == 200


def test_sign_in_sets_a_hardened_session_cookie(dashboard: Live) -> None:
    client = sign_in(dashboard)
    raw = sign_in_raw(dashboard)
    assert "sw_session=" in raw and "HttpOnly" in raw and "SameSite=lax" in raw.replace(
        "Lax", "lax")
    assert "Secure" not in raw
    # Behind a TLS-terminating proxy on this host, the cookie is Secure.
    proxied = sign_in_raw(dashboard, **{"X-Forwarded-Proto": "https"})
    assert "Secure" in proxied
    assert client.get("/overview").status_code == 200


def sign_in_raw(live: Live, **headers: str) -> str:
    """The Set-Cookie header of a successful sign-in."""
    client = live.client(**headers)
    # Read the form's token from Set-Cookie: httpx would not send back a Secure cookie
    # over plain HTTP, as a browser behind a TLS proxy would.
    form = client.get("/login")
    token = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    response = client.post("/login", data={
        "email": ADMIN_EMAIL, "password": PASSWORD, "csrf_token": token, "next": "/overview"},
        headers={"Cookie": f"sw_login_csrf={token}"})
    assert response.status_code == 303
    return next(v for v in response.headers.get_list("set-cookie") if v.startswith("sw_session"))


def login_attempt(live: Live, email: str, password: str, address: str = "203.0.113.1",
                  **form: str) -> httpx.Response:
    client = live.client(**{"X-Forwarded-For": address})
    client.get("/login")
    data = {"email": email, "password": password,
            "csrf_token": client.cookies.get("sw_login_csrf") or "", **form}
    return client.post("/login", data=data)


def test_wrong_password_and_unknown_account_get_the_same_answer(dashboard: Live) -> None:
    wrong = login_attempt(dashboard, ADMIN_EMAIL, "not the password")
    unknown = login_attempt(dashboard, "nobody@example.com", "not the password",
                            address="203.0.113.2")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail address or password." in wrong.text
    assert "Wrong e-mail address or password." in unknown.text
    assert "sw_session" not in wrong.headers.get("set-cookie", "")


def test_the_sign_in_form_needs_its_csrf_token(dashboard: Live) -> None:
    client = dashboard.client()
    response = client.post("/login", data={"email": ADMIN_EMAIL, "password": PASSWORD,
                                           "csrf_token": "forged"})
    assert response.status_code == 403
    assert "expired" in response.text
    assert "sw_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil"])
def test_sign_in_never_redirects_off_site(dashboard: Live, target: str) -> None:
    response = login_attempt(dashboard, ADMIN_EMAIL, PASSWORD, next=target)
    assert response.status_code == 303 and response.headers["location"] == "/overview"


def test_sign_in_returns_to_the_page_asked_for(dashboard: Live) -> None:
    client = dashboard.client()
    first = client.get("/behaviour/funnels?range=7d")
    assert first.status_code == 303
    assert first.headers["location"] == "/login?next=%2Fbehaviour%2Ffunnels%3Frange%3D7d"
    response = login_attempt(dashboard, ADMIN_EMAIL, PASSWORD, next="/behaviour/funnels?range=7d")
    assert response.headers["location"] == "/behaviour/funnels?range=7d"


def test_five_failures_lock_the_account_even_from_new_addresses(dashboard: Live) -> None:
    for i in range(5):
        assert login_attempt(dashboard, ADMIN_EMAIL, "wrong", f"198.51.100.{i}").status_code == 401
    locked = login_attempt(dashboard, ADMIN_EMAIL, PASSWORD, "198.51.100.99")
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert 240 <= int(locked.headers["retry-after"]) <= 301
    # Another account from a fresh address is not affected.
    assert login_attempt(dashboard, VIEWER_EMAIL, PASSWORD, "198.51.100.98").status_code == 303


def test_five_failures_from_one_address_lock_it_for_every_account(dashboard: Live) -> None:
    for i in range(5):
        response = login_attempt(dashboard, f"guess{i}@example.com", "wrong", "192.0.2.50")
        assert response.status_code == 401
    assert login_attempt(dashboard, ADMIN_EMAIL, PASSWORD, "192.0.2.50").status_code == 429
    assert login_attempt(dashboard, ADMIN_EMAIL, PASSWORD, "192.0.2.51").status_code == 303


def test_state_changing_forms_need_the_csrf_token_and_this_origin(dashboard: Live) -> None:
    client = sign_in(dashboard)
    token = csrf_of(client, "/settings/projects")
    form = {"name": "shop-b", "currency": "EUR", "timezone": "Europe/Paris"}
    missing = client.post("/settings/projects", data=form)
    wrong = client.post("/settings/projects", data={**form, "csrf_token": "x" * 43})
    foreign = client.post("/settings/projects", data={**form, "csrf_token": token},
                          headers={"Origin": "https://evil.example"})
    for response in (missing, wrong, foreign):
        assert response.status_code == 403, response.text
    assert "csrf_token" in missing.text and "origin" in foreign.text
    assert [p.name for p in dashboard.runtime.state.list_projects()] == ["shop-a"]
    ok = client.post("/settings/projects", data={**form, "csrf_token": token},
                     headers={"Origin": dashboard.base_url})
    assert ok.status_code == 303
    created = dashboard.runtime.state.get_project("shop-b")
    assert (created.currency, created.timezone) == ("EUR", "Europe/Paris")
    # The header works as well as the field (htmx sends it).
    logout = client.post("/logout", headers={"X-CSRF-Token": token})
    assert logout.status_code == 303


def test_bad_project_settings_say_what_is_wrong(dashboard: Live) -> None:
    client = sign_in(dashboard)
    token = csrf_of(client, "/settings/projects")
    response = client.post("/settings/projects", data={
        "csrf_token": token, "name": "shop-c", "currency": "EURO", "timezone": "Mars/Base"})
    assert response.status_code == 400
    assert "currency: &#39;EURO&#39; is not a three-letter ISO 4217 code" in response.text


def test_logout_ends_the_session(dashboard: Live) -> None:
    client = sign_in(dashboard)
    cookie = client.cookies.get("sw_session")
    assert client.post("/logout", data={"csrf_token": csrf_of(client)}).status_code == 303
    replay = dashboard.client()
    replay.cookies.set("sw_session", cookie)
    assert replay.get("/overview").status_code == 303
    assert replay.get("/api/v1/me").status_code == 401


def test_password_change_ends_other_sessions_and_keeps_this_one(dashboard: Live) -> None:
    laptop = sign_in(dashboard)
    phone = sign_in(dashboard)
    assert phone.get("/api/v1/me").status_code == 200
    response = laptop.post("/account/password", data={
        "csrf_token": csrf_of(laptop), "current": PASSWORD, "new": "a brand new password",
        "confirm": "a brand new password"})
    assert response.status_code == 303, response.text
    assert laptop.get("/api/v1/me").json()["user"]["email"] == ADMIN_EMAIL
    assert phone.get("/api/v1/me").status_code == 401
    assert login_attempt(dashboard, ADMIN_EMAIL, PASSWORD).status_code == 401
    assert login_attempt(dashboard, ADMIN_EMAIL, "a brand new password",
                         "203.0.113.9").status_code == 303


def test_password_change_checks_the_current_password(dashboard: Live) -> None:
    client = sign_in(dashboard)
    response = client.post("/account/password", data={
        "csrf_token": csrf_of(client), "current": "wrong", "new": "a brand new password",
        "confirm": "a brand new password"})
    assert response.status_code == 403
    assert "current password is wrong" in response.text


def test_viewers_look_but_do_not_manage(dashboard: Live) -> None:
    viewer = sign_in(dashboard, VIEWER_EMAIL)
    assert viewer.get("/overview").status_code == 200
    assert viewer.get("/settings/projects").status_code == 403
    assert viewer.get("/settings/users").status_code == 403
    token = csrf_of(viewer)
    assert viewer.post("/settings/projects", data={"csrf_token": token,
                                                   "name": "x"}).status_code == 403
    assert viewer.post("/settings/projects/1/keys/ingest/rotate",
                       data={"csrf_token": token}).status_code == 403
    projects = viewer.get("/api/v1/projects").json()["projects"]
    assert projects and "secret_key" not in projects[0] and "ingest_key" not in projects[0]
    assert viewer.get("/api/v1/users").status_code == 403
    assert "Projects &amp; keys" not in viewer.get("/overview").text


def test_the_secret_key_reads_the_api_without_a_session(dashboard: Live) -> None:
    a = dashboard.runtime.state.get_project("shop-a")
    b = dashboard.create_project("shop-b")
    client = dashboard.client(a.secret_key)
    assert client.get("/api/v1/overview?range=1h").status_code == 200
    assert client.get("/api/v1/projects").json()["projects"][0]["id"] == a.id
    assert len(client.get("/api/v1/projects").json()["projects"]) == 1
    other = client.get(f"/api/v1/overview?project={b.id}")
    assert other.status_code == 403 and "belongs to project" in other.text
    page = client.get("/overview")  # pages need a session, keys open none
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_rotating_and_revoking_keys_from_settings(dashboard: Live) -> None:
    client = sign_in(dashboard)
    old = dashboard.runtime.state.get_project("shop-a")
    token = csrf_of(client, "/settings/projects")
    fragment = client.post(f"/settings/projects/{old.id}/keys/ingest/rotate",
                           data={"csrf_token": token}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    new = dashboard.runtime.state.get_project("shop-a")
    assert new.ingest_key != old.ingest_key and new.ingest_key in fragment.text
    assert "<html" not in fragment.text  # only the card, swapped in by htmx
    assert new.secret_key == old.secret_key
    event = [{"name": "page_view", "page": "/"}]
    deadline = time.monotonic() + 5
    while dashboard.post_events(old.ingest_key or "", event).status_code != 401:
        assert time.monotonic() < deadline, "the old key still works"
        time.sleep(0.2)
    assert dashboard.post_events(new.ingest_key or "", event).status_code == 200
    revoked = client.post(f"/settings/projects/{old.id}/keys/secret/revoke",
                          data={"csrf_token": token})
    assert revoked.status_code == 303
    assert dashboard.runtime.state.get_project("shop-a").secret_key is None
    assert "revoked" in client.get("/settings/projects").text


def test_admins_manage_users(dashboard: Live) -> None:
    client = sign_in(dashboard)
    token = csrf_of(client, "/settings/users")
    bad = client.post("/settings/users", data={"csrf_token": token, "email": "new@example.com",
                                               "role": "viewer", "password": "short"})
    assert bad.status_code == 400 and "password: at least 10 characters" in bad.text
    added = client.post("/settings/users", data={"csrf_token": token, "email": "new@example.com",
                                                 "role": "viewer", "password": "long enough pw"})
    assert added.status_code == 303
    new = dashboard.runtime.users.find("new@example.com")
    newcomer = sign_in(dashboard, "new@example.com", "long enough pw")
    assert client.post(f"/settings/users/{new.id}/role",
                       data={"csrf_token": token, "role": "admin"}).status_code == 303
    assert dashboard.runtime.users.get(new.id).role == "admin"
    assert client.post(f"/settings/users/{new.id}/sign-out",
                       data={"csrf_token": token}).status_code == 303
    assert newcomer.get("/api/v1/me").status_code == 401
    assert client.post(f"/settings/users/{new.id}/remove",
                       data={"csrf_token": token}).status_code == 303
    assert [u["email"] for u in client.get("/api/v1/users").json()["users"]] == [
        ADMIN_EMAIL, VIEWER_EMAIL]


def test_every_section_page_renders_and_says_what_is_not_built(dashboard: Live) -> None:
    client = sign_in(dashboard, VIEWER_EMAIL)
    for path, page in PAGES.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert f"<title>{page.title} · Shopwatch</title>" in response.text
        if not page.built:
            assert "Not built yet" in response.text
            assert html.unescape(response.text).count(page.fills_from) == 1
    unknown = client.get("/reliability/nothing", headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and "Page not found" in unknown.text


def test_pages_send_security_headers(dashboard: Live) -> None:
    response = sign_in(dashboard).get("/overview")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


def test_overview_figures_come_from_stored_events(dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    events: list[dict[str, Any]] = [
        {"name": "page_view", "session_id": "s1", "page": "/"},
        {"name": "page_view", "session_id": "s2", "page": "/"},
        {"name": "purchase", "session_id": "s1",
         "params": {"transaction_id": "T1", "value": 20.5, "currency": "USD"}},
        {"name": "purchase", "session_id": "s1",  # the same order sent twice
         "params": {"transaction_id": "T1", "value": 20.5, "currency": "USD"}},
    ]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    client = sign_in(dashboard, VIEWER_EMAIL)
    body = client.get(f"/api/v1/overview?project={project.id}&range=1h").json()
    assert body["orders_today"]["value"] == 1
    assert body["revenue_today"]["value"] == pytest.approx(20.5)
    assert body["active_sessions"]["value"] == 2
    assert body["conversion_rate"]["value"] == pytest.approx(0.5)
    assert body["traffic"]["events"] == 4
    assert body["availability"]["status"] == "none"  # no monitor has run
    assert body["open_alerts"]["status"] == "none"  # no rule
    counts = client.get("/api/v1/event-counts?name=purchase&name=refund&range=1h").json()
    assert [(c["name"], c["events"]) for c in counts["counts"]] == [("purchase", 2),
                                                                     ("refund", 0)]


@pytest.mark.parametrize(("query", "message"), [
    ("range=2h", "range:"),
    ("range=custom&from=2026-01-02T00:00&to=2026-01-01T00:00", "to:"),
    ("range=custom", "from:"),
    ("project=999", "project:"),
])
def test_bad_dashboard_queries_name_the_field(dashboard: Live, query: str, message: str) -> None:
    response = sign_in(dashboard).get(f"/api/v1/overview?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)


def test_the_api_page_serves_swagger_ui_locally(dashboard: Live) -> None:
    client = sign_in(dashboard)
    page = client.get("/api/docs")
    assert page.status_code == 200 and "/static/vendor/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert client.get("/static/vendor/swagger-ui-bundle.js").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/api/v1/overview" in spec["paths"]
