"""PII scrubbing: URLs, free text, secret-named params and email identifiers.

The rules are tested on :mod:`shopwatch.privacy` directly and through the pipeline, so
a scrubbing step dropped from the pipeline fails here too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopwatch.ingest.pipeline import Format, PipelineConfig
from shopwatch.privacy import (
    hash_address,
    luhn_ok,
    network_prefix,
    parse_address,
    payload_has_card,
    pseudonymize,
    scrub_params,
    scrub_text,
    scrub_url,
)
from tests.conftest import Sink

VISA = "4111111111111111"  # Luhn-valid test card numbers
AMEX = "378282246310005"
NOT_LUHN = "4111111111111112"
KEY = b"k" * 32
CONFIG = PipelineConfig(pseudonym_key=KEY, query_allow=frozenset({"page", "sort"}))


def stored(sink: Sink, *events: dict[str, Any],
           config: PipelineConfig = CONFIG) -> list[dict[str, Any]]:
    """Run events through the pipeline into the real store; the stored rows, in order."""
    events = tuple({**e, "id": e.get("id", f"e{i}")} for i, e in enumerate(events))
    outcome, rows = sink.ingest(json.dumps({"events": list(events)}).encode(), Format.JSON,
                                config=config)
    assert outcome.rejected == []
    order = {e["id"]: i for i, e in enumerate(events)}
    return sorted(rows, key=lambda r: order[r["id"]])


@pytest.mark.parametrize(("url", "expected"), [
    ("https://shop.example/p/1?q=shoes&utm_source=news&sessionid=abc#reviews",
     "https://shop.example/p/1?utm_source=news"),
    ("/checkout?step=2&token=secret#x", "/checkout"),
    ("/cart#anchor", "/cart"),
    ("/c/shoes?page=2&sort=price&color=red", "/c/shoes?page=2&sort=price"),
    ("/x?utm_campaign=summer&utm_medium=mail&utm_whatever=1",
     "/x?utm_campaign=summer&utm_medium=mail&utm_whatever=1"),
    ("/plain/path", "/plain/path"),
    ("https://shop.example/", "https://shop.example/"),
])
def test_url_query_and_fragment(url: str, expected: str) -> None:
    assert scrub_url(url, frozenset({"page", "sort"})) == expected


def test_query_allow_list_is_empty_by_default() -> None:
    assert scrub_url("/c?page=2&utm_source=x") == "/c?utm_source=x"


@pytest.mark.parametrize(("url", "expected"), [
    ("/account/jane.doe+shop@example.com/orders", "/account/[email]/orders"),
    ("/account/jane%40example.com/orders", "/account/[email]/orders"),
    ("/x?utm_source=jane@example.com", "/x?utm_source=[email]"),
    ("/x?page=jane@example.com", "/x?page=[email]"),
    (f"/pay/{VISA}/confirm", "/pay/[card]/confirm"),
    (f"/x?utm_content={AMEX}", "/x?utm_content=[card]"),
    (f"/order/{NOT_LUHN}", f"/order/{NOT_LUHN}"),
    ("/order/123456789012", "/order/123456789012"),  # 12 digits: too short for a card
])
def test_url_emails_and_cards(url: str, expected: str) -> None:
    assert scrub_url(url, frozenset({"page"})) == expected


def test_luhn() -> None:
    assert luhn_ok(VISA) and luhn_ok(AMEX) and luhn_ok("5555555555554444")
    assert not luhn_ok(NOT_LUHN)
    assert not luhn_ok("1234567890123")


@pytest.mark.parametrize(("text", "expected"), [
    ("mail me at jane@example.com please", "mail me at [email] please"),
    (f"card {VISA} ok", "card [card] ok"),
    (f"card {VISA[:4]} {VISA[4:8]}", f"card {VISA[:4]} {VISA[4:8]}"),
    (f"order {NOT_LUHN}", f"order {NOT_LUHN}"),
    ("41111111111111111111", "41111111111111111111"),  # 20 digits: not a card
    ("ref 1234567890123", "ref 1234567890123"),  # 13 digits, fails Luhn
    ("no pii here", "no pii here"),
])
def test_free_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@given(st.integers(10**12, 10**19 - 1))
@settings(max_examples=300, deadline=None)
def test_long_digit_runs_are_replaced_exactly_when_luhn_valid(number: int) -> None:
    digits = str(number)
    expected = "[card]" if luhn_ok(digits) else digits
    assert scrub_text(f"x {digits} y") == f"x {expected} y"
    assert scrub_url(f"/o/{digits}") == f"/o/{expected}"


def test_secret_named_params_are_redacted() -> None:
    params = {"password": "hunter2", "new_password": "x", "api_key": "k", "apiKey": "k",
              "card_number": VISA, "cardNumber": "1", "cvc": "123", "CVV": "123", "iban": "DE00",
              "auth_token": "t", "client_secret": "s", "pan": "x", "ssn": "1",
              "payment_method": "card", "company": "ACME", "panel": "left"}
    scrubbed = scrub_params(params)
    for key in params:
        if key in ("payment_method", "company", "panel"):
            assert scrubbed[key] == params[key], key
        else:
            assert scrubbed[key] == "[redacted]", key


def test_secrets_and_pii_nested_in_params_are_scrubbed() -> None:
    params = {"items": [{"item_id": "1", "token": "t", "note": "jane@example.com"}],
              "form": {"password": "x", "email_field": "bob@example.org"},
              "notes": ["call bob@example.org", f"card {VISA}"]}
    assert scrub_params(params) == {
        "items": [{"item_id": "1", "token": "[redacted]", "note": "[email]"}],
        "form": {"password": "[redacted]", "email_field": "[email]"},
        "notes": ["call [email]", "card [card]"],
    }


def test_email_identifiers_are_pseudonymized_consistently() -> None:
    a = pseudonymize("jane@example.com", KEY)
    assert a.startswith("email:")
    assert "jane" not in a and "example" not in a
    assert pseudonymize(" Jane@Example.COM ", KEY) == a
    assert pseudonymize("bob@example.com", KEY) != a
    assert pseudonymize("jane@example.com", b"other-instance-key") != a
    assert pseudonymize("customer-42", KEY) == "customer-42"


def test_address_hash_is_keyed_canonical_and_short() -> None:
    h = hash_address("203.0.113.9", KEY)
    assert len(h) == 16 and set(h) <= set("0123456789abcdef")
    expected = hmac.new(KEY, b"net:203.0.113.9", hashlib.sha256).hexdigest()[:16]
    assert h == expected
    assert hash_address(" 203.0.113.9 ", KEY) == h
    assert hash_address("::ffff:203.0.113.9", KEY) == h  # IPv4-mapped counts as IPv4
    assert hash_address(parse_address("203.0.113.9") or "", KEY) == h
    assert hash_address("203.0.113.10", KEY) != h
    assert hash_address("203.0.113.9", b"other-instance-key") != h
    v6 = hash_address("2001:db8::1", KEY)
    assert v6 == hmac.new(KEY, b"net:2001:db8::1", hashlib.sha256).hexdigest()[:16]
    assert hash_address("2001:DB8:0:0:0:0:0:1", KEY) == v6
    assert hash_address("2001:db8::1%eth0", KEY) == v6  # the zone is not the address
    with pytest.raises(ValueError, match="is not an IPv4 or IPv6 address"):
        hash_address("203.0.113.9:80", KEY)


@pytest.mark.parametrize(("text", "v4", "v6", "expected"), [
    ("203.0.113.9", 24, 48, "203.0.113.0/24"),
    ("203.0.113.9", 16, 48, "203.0.0.0/16"),
    ("203.0.113.9", 32, 48, "203.0.113.9/32"),
    ("203.0.113.9", 8, 48, "203.0.0.0/8"),
    ("::ffff:203.0.113.9", 24, 48, "203.0.113.0/24"),
    ("2001:db8:1:2:3:4:5:6", 24, 48, "2001:db8:1::/48"),
    ("2001:db8:1:2:3:4:5:6", 24, 64, "2001:db8:1:2::/64"),
    ("2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6/128"),
    ("2001:db8:1:2:3:4:5:6", 24, 16, "2001::/16"),
    ("::1", 24, 48, "::/48"),
])
def test_network_prefix(text: str, v4: int, v6: int, expected: str) -> None:
    address = parse_address(text)
    assert address is not None
    assert network_prefix(address, v4, v6) == expected


@pytest.mark.parametrize("text", ["", "x", "203.0.113", "203.0.113.256", "203.0.113.9/24",
                                  "[2001:db8::1]", "2001:db8::1::2", "203.0.113.9, 10.0.0.1"])
def test_parse_address_refuses_what_is_not_one_address(text: str) -> None:
    assert parse_address(text) is None


def test_net_hash_digit_runs_are_not_taken_for_card_numbers() -> None:
    """A hash of 16 hex digits may be all decimal digits, even Luhn-valid; it is ours,
    so it must not cost a deep scrub of the request."""
    digits = "4111111111111111"  # the worst case
    assert not payload_has_card(f'[{{"name":"login","net_hash":"{digits}"}}]'.encode())
    assert payload_has_card(f'[{{"name":"login","note":"{digits}"}}]'.encode())


def test_pipeline_scrubs_every_field(sink: Sink) -> None:
    [row] = stored(sink, {
        "name": "purchase",
        "page": f"https://shop.example/thanks/jane@example.com?order=1&utm_source=mail&card={VISA}",
        "referrer": "https://mail.example/inbox#msg=jane@example.com",
        "user_id": "Jane@Example.com",
        "anonymous_id": "jane@example.com",
        "session_id": "s-1",
        "params": {"value": 10, "password": "hunter2", "note": f"paid with {VISA}",
                   "contact": "jane@example.com", "transaction_id": "T1"},
    })
    assert row["page"] == "https://shop.example/thanks/[email]?utm_source=mail"
    assert row["referrer"] == "https://mail.example/inbox"
    assert row["user_id"] == pseudonymize("jane@example.com", KEY)
    assert row["anonymous_id"] == row["user_id"]  # the same person, consistently
    assert row["session_id"] == "s-1"
    assert row["params"] == {
        "value": 10, "password": "[redacted]", "note": "paid with [card]", "contact": "[email]",
        "transaction_id": "T1"}
    dump = json.dumps(row)
    assert "jane" not in dump.lower() and VISA not in dump
    assert "hunter2" not in dump


@pytest.mark.parametrize(("page", "expected"), [
    ("/account/jane%40example.com/orders", "/account/[email]/orders"),
    (f"/pay/{VISA}", "/pay/[card]"),
    ("/p?utm_source=x", "/p?utm_source=x"),
    ("/p?q=secret+stuff", "/p"),
    ("/p#frag", "/p"),
])
def test_pipeline_scrubs_urls_without_other_pii_in_the_body(
        sink: Sink, page: str, expected: str) -> None:
    """A body with nothing else suspicious in it still gets its URLs scrubbed."""
    [row] = stored(sink, {"name": "page_view", "page": page, "referrer": page})
    assert row["page"] == expected
    assert row["referrer"] == expected


def test_pseudonyms_are_stable_across_requests_and_distinct_per_person(sink: Sink) -> None:
    first = stored(sink, {"name": "login", "user_id": "jane@example.com"},
                   {"name": "login", "user_id": "bob@example.com"})
    [second] = stored(sink, {"name": "purchase", "user_id": "JANE@example.com"})
    jane, bob = (r["user_id"] for r in first)
    assert jane.startswith("email:") and bob.startswith("email:")
    assert second["user_id"] == jane
    assert jane != bob
    [other_instance] = stored(sink, {"name": "login", "user_id": "jane@example.com"},
                              config=PipelineConfig(pseudonym_key=b"x" * 32))
    assert other_instance["user_id"] != jane


def test_pii_free_events_are_left_alone(sink: Sink) -> None:
    event = {"name": "page_view", "page": "/c/shoes", "user_id": "customer-42",
             "utm_source": "newsletter", "params": {"list": "summer", "n": 3}}
    [row] = stored(sink, event)
    assert row["page"] == "/c/shoes"
    assert row["user_id"] == "customer-42"
    assert row["utm_source"] == "newsletter"
    assert row["params"] == {"list": "summer", "n": 3}


def test_emails_in_utm_fields_and_inside_ids_are_removed(sink: Sink) -> None:
    [row] = stored(sink, {"name": "page_view", "utm_content": "jane@example.com",
                          "session_id": "s:jane@example.com:1"})
    assert row["utm_content"] == "[email]"
    assert "jane" not in row["session_id"]
    assert row["session_id"].startswith("s:email:") and row["session_id"].endswith(":1")
