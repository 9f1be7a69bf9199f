"""Any table of the API as CSV or Parquet: ``?format=csv`` or ``?format=parquet``.

A route that returns rows hands them here with its JSON body; without ``format`` (or
``format=json``) the JSON goes out unchanged. Nested values (device, params, items) are
written as JSON text in CSV and as JSON strings in Parquet, so every file is flat.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from fastapi import Request, Response

from shopwatch.errors import BadRequest

FORMATS = ("json", "csv", "parquet")
_encode = msgspec.json.Encoder().encode


def _flat(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return _encode(value).decode()
    return value


def respond(request: Request, body: Any, rows: Sequence[Mapping[str, Any]],
            name: str) -> Response:
    """``body`` as JSON, or ``rows`` as ``name.csv`` / ``name.parquet`` per ``?format=``."""
    fmt = request.query_params.get("format", "json")
    if fmt not in FORMATS:
        raise BadRequest(f"format: one of {', '.join(FORMATS)}")
    if fmt == "json":
        return Response(_encode(body), media_type="application/json")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    flat = [{k: _flat(row.get(k)) for k in columns} for row in rows]
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers=disposition)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(flat) if flat else pa.table(
        {c: pa.array([], pa.string()) for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return Response(sink.getvalue(), media_type="application/vnd.apache.parquet",
                    headers=disposition)
