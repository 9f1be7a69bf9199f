"""A small MaxMind DB writer for tests (no writer package is installable here).

It follows the MaxMind DB format, version 2.0 (https://maxmind.github.io/MaxMind-DB/):
a binary search tree of 24-bit records, 16 zero bytes, a data section, then the
metadata map after ``b"\\xab\\xcd\\xefMaxMind.com"``. An IPv6 database (the usual
layout) holds IPv4 networks at ``::/96`` (``81.2.69.0/24`` is ``::5102:4500/120``),
where readers look IPv4 addresses up; an IPv4 database holds IPv4 networks only.

Values may be ``dict`` (keys ``str``), ``list``, ``str``, ``bytes``, ``bool``, ``float``
(stored as a double) and ``int`` from 0 to 2**128 - 1 (the smallest unsigned type that
holds it, or the one of a :class:`UInt` such as ``UInt(5, 32)``: the metadata fields
have fixed types, and libmaxminddb checks them). Only what the tests need: 24-bit
records only, no pointers in the data section (equal records are stored once all the
same), and at most 2**24 - 1 nodes.

    write_mmdb(path, {"81.2.69.0/24": {"country": {"iso_code": "GB"}}})
"""

from __future__ import annotations

import ipaddress
import struct
import time
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
DATA_SEPARATOR = b"\x00" * 16
RECORD_SIZE = 24

# Type numbers of the data section; 1 to 7 fit in the control byte, the rest are
# "extended" (the control byte's type bits are 0 and the next byte holds type - 7).
_UTF8, _DOUBLE, _BYTES, _UINT16, _UINT32, _MAP = 2, 3, 4, 5, 6, 7
_UINT64, _UINT128, _ARRAY, _BOOLEAN = 9, 10, 11, 14


class UInt(int):
    """An unsigned integer stored as the given type (16, 32, 64 or 128 bits)."""

    bits: int

    def __new__(cls, value: int, bits: int) -> UInt:
        if bits not in (16, 32, 64, 128) or not 0 <= value < 2**bits:
            raise ValueError(f"{value} is not a uint{bits}")
        made = super().__new__(cls, value)
        made.bits = bits
        return made


def _control(type_number: int, size: int) -> bytes:
    if size < 29:
        size_bits, extra = size, b""
    elif size < 29 + 256:
        size_bits, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        size_bits, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        size_bits, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_number <= 7:
        return bytes([(type_number << 5) | size_bits]) + extra
    return bytes([size_bits, type_number - 7]) + extra


def encode(value: Any) -> bytes:
    """``value`` in the data section's encoding."""
    if isinstance(value, bool):  # before int: bool is an int
        return _control(_BOOLEAN, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(_UTF8, len(raw)) + raw
    if isinstance(value, bytes):
        return _control(_BYTES, len(value)) + value
    if isinstance(value, float):
        return _control(_DOUBLE, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if not 0 <= value < 2**128:
            raise ValueError(f"{value} is not an unsigned integer of at most 128 bits")
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")  # 0: no bytes
        bits = value.bits if isinstance(value, UInt) else next(
            b for b in (16, 32, 64, 128) if value < 2**b)
        type_number = {16: _UINT16, 32: _UINT32, 64: _UINT64, 128: _UINT128}[bits]
        return _control(type_number, len(raw)) + raw
    if isinstance(value, dict):
        parts = [_control(_MAP, len(value))]
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"map keys are strings, not {key!r}")
            parts += [encode(key), encode(item)]
        return b"".join(parts)
    if isinstance(value, list | tuple):
        return _control(_ARRAY, len(value)) + b"".join(encode(item) for item in value)
    raise TypeError(f"no MaxMind DB type for {value!r}")


class _Node:
    __slots__ = ("children",)

    def __init__(self) -> None:
        # Each side: None (no data), a _Node, or bytes (an encoded record).
        self.children: list[_Node | bytes | None] = [None, None]


def _insert(root: _Node, bits: int, width: int, prefix: int, record: bytes) -> None:
    """Put ``record`` on the network of the first ``prefix`` of ``width`` bits.
    A network inside one inserted before splits it (the more specific one wins);
    one around networks inserted before replaces them."""
    if prefix == 0:
        raise ValueError("a network of prefix length 0 has no place in the tree")
    node = root
    for depth in range(prefix):
        side = (bits >> (width - 1 - depth)) & 1
        if depth == prefix - 1:
            node.children[side] = record
            return
        child = node.children[side]
        if not isinstance(child, _Node):
            split = _Node()
            split.children = [child, child]  # the wider network keeps the other half
            node.children[side] = child = split
        node = child


def build(networks: dict[str, Any], *, ip_version: int = 6,
          database_type: str = "Shopwatch-Test-Country",
          description: str = "Shopwatch test database", build_epoch: int | None = None,
          ) -> bytes:
    """The bytes of a database mapping each network (``"81.2.69.0/24"``) to its record,
    inserted in order (a later, more specific network overrides an earlier one)."""
    if ip_version not in (4, 6):
        raise ValueError("ip_version is 4 or 6")
    width = 128 if ip_version == 6 else 32
    root = _Node()
    for text, value in networks.items():
        network = ipaddress.ip_network(text)
        bits, prefix = int(network.network_address), network.prefixlen
        if network.version == 4 and ip_version == 6:
            prefix += 96  # ::a.b.c.d, where readers look IPv4 addresses up
        elif network.version == 6 and ip_version == 4:
            raise ValueError(f"{text}: an IPv6 network in an IPv4 database")
        _insert(root, bits, width, prefix, encode(value))

    # Number the nodes breadth-first from the root (node 0), and lay the records out.
    order: list[_Node] = [root]
    index = {id(root): 0}
    for node in order:
        for child in node.children:
            if isinstance(child, _Node):
                index[id(child)] = len(order)
                order.append(child)
    node_count = len(order)
    data = bytearray()
    offsets: dict[bytes, int] = {}
    tree = bytearray()
    for node in order:
        for child in node.children:
            if child is None:
                value = node_count  # "no data"
            elif isinstance(child, _Node):
                value = index[id(child)]
            else:
                if child not in offsets:
                    offsets[child] = len(data)
                    data += child
                value = node_count + 16 + offsets[child]
            if value >= 2**RECORD_SIZE:
                raise ValueError("too large for 24-bit records")
            tree += value.to_bytes(3, "big")

    metadata = {
        "node_count": UInt(node_count, 32),
        "record_size": UInt(RECORD_SIZE, 16),
        "ip_version": UInt(ip_version, 16),
        "database_type": database_type,
        "languages": ["en"],
        "binary_format_major_version": UInt(2, 16),
        "binary_format_minor_version": UInt(0, 16),
        "build_epoch": UInt(int(time.time()) if build_epoch is None else build_epoch, 64),
        "description": {"en": description},
    }
    return bytes(tree) + DATA_SEPARATOR + bytes(data) + METADATA_MARKER + encode(metadata)


def write_mmdb(path: Path, networks: dict[str, Any], **options: Any) -> Path:
    """Write :func:`build` ``(networks, **options)`` to ``path`` and return it."""
    path.write_bytes(build(networks, **options))
    return path
