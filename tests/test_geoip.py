"""GeoIP: the country of a RUM beacon from a MaxMind-format database, and never the address.

The databases are written here by :mod:`tests.mmdb` (Shopwatch ships none, and no writer
package is installable) and read by the real ``maxminddb`` reader, both its C extension
and its pure-Python reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import maxminddb
import pytest
from click.testing import CliRunner

from shopwatch.cli import main
from shopwatch.errors import ConfigError
from shopwatch.geoip import CountryLookup, client_address
from tests.conftest import Live
from tests.mmdb import build, write_mmdb

GB = {"country": {"iso_code": "GB", "names": {"en": "United Kingdom"}}}
DE = {"country": {"iso_code": "DE", "names": {"en": "Germany"}}}
NETWORKS: dict[str, Any] = {
    "81.2.69.0/24": GB,  # GeoLite2 shape: country.iso_code
    "2.125.160.0/20": DE,
    "2a02:d200::/29": {"country_code": "fi"},  # DB-IP / IPinfo shape: country_code
    "89.160.20.112/28": {"continent": {"code": "EU"}},  # a network without a country
    "89.160.20.128/28": {"country": {"iso_code": "SWE"}},  # not a two-letter code
    "10.0.0.0/8": GB,  # private: never looked up, whatever the file says
}
ADDRESS = "81.2.69.160"


@pytest.fixture
def geo_db(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "country.mmdb", NETWORKS)


# --- the test writer, checked against the real reader ----------------------------------------


@pytest.mark.parametrize("mode", [maxminddb.MODE_MMAP_EXT, maxminddb.MODE_FILE],
                         ids=["libmaxminddb", "python"])
@pytest.mark.parametrize("ip_version", [6, 4])
def test_written_database_reads_back(tmp_path: Path, mode: int, ip_version: int) -> None:
    networks = {net: value for net, value in NETWORKS.items()
                if ip_version == 6 or ":" not in net}
    networks["81.2.69.192/28"] = {"n": 70_000, "big": 2**40, "f": 0.5, "ok": True,
                                  "list": [1, "two"], "raw": b"\x00\x01", "s": "é" * 40}
    path = write_mmdb(tmp_path / "t.mmdb", networks, ip_version=ip_version,
                      build_epoch=1_700_000_000)
    with maxminddb.open_database(str(path), mode) as reader:
        meta = reader.metadata()
        assert (meta.ip_version, meta.record_size, meta.binary_format_major_version,
                meta.binary_format_minor_version) == (ip_version, 24, 2, 0)
        assert meta.build_epoch == 1_700_000_000
        assert meta.database_type == "Shopwatch-Test-Country"
        assert meta.languages == ["en"] and meta.description == {"en": "Shopwatch test database"}
        assert reader.get_with_prefix_len("81.2.69.160") == (GB, 26)  # split by the /28
        assert reader.get_with_prefix_len("81.2.69.1") == (GB, 25)
        assert reader.get("2.125.175.255") == DE
        assert reader.get("2.125.176.0") is None
        assert reader.get("8.8.8.8") is None
        special = reader.get("81.2.69.200")
        assert isinstance(special, dict)
        raw = special["raw"]  # bytes from the Python reader, bytearray from the C one
        assert isinstance(raw, bytes | bytearray)
        assert {**special, "raw": bytes(raw)} == networks["81.2.69.192/28"]
        if ip_version == 6:
            assert reader.get("2a02:d207:1::1") == {"country_code": "fi"}
            assert reader.get("2a02:d208::1") is None
        else:
            with pytest.raises(ValueError, match="IPv6 address in an IPv4-only database"):
                reader.get("2a02:d207:1::1")
        # Walking the whole tree gives back each network (the /24 split around the /28).
        assert {str(net): value for net, value in reader
                if str(net).startswith(("81.", "2."))} == {
            "2.125.160.0/20": DE, "81.2.69.0/25": GB, "81.2.69.128/26": GB,
            "81.2.69.192/28": special, "81.2.69.208/28": GB, "81.2.69.224/27": GB}


def test_writer_layout_follows_the_spec() -> None:
    db = build({"1.0.0.0/8": {"a": "b"}}, ip_version=4)
    # 8 nodes down to 1.0.0.0/8; each has two 24-bit records; then 16 zero bytes.
    tree, rest = db[:8 * 6], db[8 * 6:]
    assert rest.startswith(b"\x00" * 16)
    data_pointer = 8 + 16 + 0  # node_count + separator + offset in the data section
    assert tree[-3:] == data_pointer.to_bytes(3, "big")  # 1.x: the right record of node 7
    assert tree[-6:-3] == (8).to_bytes(3, "big")  # 0.x: no data
    assert rest[16:19] == b"\xe1\x41a"  # map of 1 pair, then the key: utf8 of 1 byte
    assert db.count(b"\xab\xcd\xefMaxMind.com") == 1


# --- CountryLookup ---------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "country"), [
    (ADDRESS, "GB"),
    ("81.2.69.1", "GB"),
    ("2.125.160.216", "DE"),
    ("2a02:d200::1", "FI"),  # country_code, upper-cased
    ("8.8.8.8", None),  # in no network
    ("2001:4860::8888", None),
    ("89.160.20.115", None),  # a record without a country
    ("89.160.20.130", None),  # "SWE" is not an ISO 3166-1 alpha-2 code
    ("10.1.2.3", None),  # private, though the file maps it
    ("192.168.1.10", None),
    ("127.0.0.1", None),
    ("::1", None),
    ("fe80::1", None),
    ("100.64.0.1", None),  # carrier-grade NAT
    ("not an address", None),
    ("", None),
    ("81.2.69.160:443", None),  # a port is not part of an address
    ("::ffff:81.2.69.160", "GB"),  # IPv4-mapped (a server on "::"): looked up as IPv4
    ("::ffff:10.1.2.3", None),
])
def test_country_lookup(geo_db: Path, address: str, country: str | None) -> None:
    lookup = CountryLookup(geo_db)
    try:
        assert lookup.lookup(address) == country
    finally:
        lookup.close()


def test_ipv4_only_database_answers_none_for_ipv6(tmp_path: Path) -> None:
    lookup = CountryLookup(write_mmdb(tmp_path / "v4.mmdb", {"81.2.69.0/24": GB}, ip_version=4))
    assert lookup.lookup(ADDRESS) == "GB"
    assert lookup.lookup(f"::ffff:{ADDRESS}") == "GB"
    assert lookup.lookup("2a02:d200::1") is None  # the reader's ValueError, not a crash
    lookup.close()


@pytest.mark.parametrize("make", [
    lambda d: d / "missing.mmdb",
    lambda d: d,  # a directory
    lambda d: _written(d / "garbage.mmdb", b"this is not a MaxMind DB" * 10),
    lambda d: _written(d / "truncated.mmdb", build({"81.2.69.0/24": GB})[:40]),
])
def test_unusable_database_is_a_config_error_naming_the_setting(
        tmp_path: Path, make: Callable[[Path], Path]) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=r"^geoip_database: cannot open ") as raised:
        CountryLookup(path)
    assert str(path) in str(raised.value)


def _written(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_serve_with_an_unusable_database_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--data", str(tmp_path / "data"), "--port", "9"],
                                env={"SHOPWATCH_GEOIP_DATABASE": str(tmp_path / "nope.mmdb")})
    assert result.exit_code == 1
    assert "geoip_database: cannot open" in result.output


# --- client_address --------------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "forwarded_for", "address"), [
    ("127.0.0.1", ADDRESS, ADDRESS),  # a proxy on this machine: its header counts
    ("127.0.0.1", f" {ADDRESS} , 10.0.0.1, 127.0.0.1", ADDRESS),  # the first hop
    ("::1", "2a02:d200::1", "2a02:d200::1"),
    ("127.8.9.10", ADDRESS, ADDRESS),  # all of 127.0.0.0/8 is loopback
    ("::ffff:127.0.0.1", ADDRESS, ADDRESS),  # a local proxy seen by a server on "::"
    ("::ffff:203.0.113.9", ADDRESS, "::ffff:203.0.113.9"),
    ("127.0.0.1", None, "127.0.0.1"),
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", " , 1.2.3.4", "127.0.0.1"),
    ("203.0.113.9", ADDRESS, "203.0.113.9"),  # anyone else could forge it
    ("10.0.0.5", ADDRESS, "10.0.0.5"),  # a private peer is not this machine either
    ("2.125.160.216", None, "2.125.160.216"),
    (None, ADDRESS, None),
    ("testclient", ADDRESS, None),  # not an address (e.g. a test transport)
])
def test_client_address_honours_forwarded_for_only_from_loopback(
        peer: str | None, forwarded_for: str | None, address: str | None) -> None:
    assert client_address(peer, forwarded_for) == address


# --- end to end: a beacon over HTTP ------------------------------------------------------------


def _send_beacon(live: Live, ingest_key: str | None, view: str = "p1", **headers: str) -> None:
    body = {"sid": "s1", "r": [{"k": "view", "pv": view, "url": "https://shop.example/"}]}
    response = live.client().post(f"/api/v1/rum?key={ingest_key}", content=json.dumps(body),
                                  headers={"content-type": "text/plain", **headers})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def _stored(live: Live) -> str:
    """Every column of every rum and events row, as text."""
    rows = [*live.runtime.events.query("SELECT * FROM rum"),
            *live.runtime.events.query("SELECT * FROM events")]
    return json.dumps(rows, default=str)


def test_beacon_gets_the_country_of_the_forwarded_address_and_not_the_address(
        server: Callable[..., Live], geo_db: Path) -> None:
    live = server(geoip_database=str(geo_db))
    project = live.create_project()
    # The test client connects from 127.0.0.1, a loopback peer: a proxy's header counts.
    _send_beacon(live, project.ingest_key, "p1", **{"x-forwarded-for": ADDRESS})
    _send_beacon(live, project.ingest_key, "p2",
                 **{"x-forwarded-for": "2.125.160.216, 127.0.0.1"})
    _send_beacon(live, project.ingest_key, "p3")  # from 127.0.0.1 itself: no country
    assert live.runtime.events.query("SELECT view_id, country FROM rum ORDER BY view_id") == [
        ("p1", "GB"), ("p2", "DE"), ("p3", None)]
    stored = _stored(live)
    for address in (ADDRESS, "81.2.69", "2.125.160.216", "127.0.0.1"):
        assert address not in stored


def test_without_a_database_no_country_is_stored(server: Callable[..., Live]) -> None:
    live = server()
    assert live.settings.geoip_database == ""
    assert live.runtime.geoip is None
    project = live.create_project()
    _send_beacon(live, project.ingest_key, **{"x-forwarded-for": ADDRESS})
    assert live.runtime.events.query("SELECT country FROM rum") == [(None,)]
    assert ADDRESS not in _stored(live)
