"""Imports: history from files into a project (``shopwatch import KIND FILE``;
docs/import.md).

Kinds and what a row becomes:

- ``contacts``: a ``support_contact`` event (docs/service-desk.md), dated ``queued_at``.
- ``orders``: a ``purchase`` event (``transaction_id`` = ``order_id``) dated
  ``ordered_at``, and a ``refund`` event dated ``refunded_at`` when the row has one.
- ``customers``: a ``sign_up`` event dated ``created_at`` (or ``first_seen``).
- ``spend``: marketing spend rows, handed to :mod:`shopwatch.spend` as an upload is.

Files are CSV (UTF-8, a header row naming the columns, any order, case-insensitive) or
Parquet (``.parquet``). A bad row is reported with its line (the header is line 1; in
Parquet, the row's number plus one, as if it had a header), the field and the reason,
and never stops the good rows.

Idempotency: every event gets an id derived from the kind and the row's id
(``import:orders:<order_id>``, ``import:orders:<order_id>:refund``,
``import:contacts:<contact_id>``, ``import:customers:<user_id>``). The event store
remembers client ids only for ``dedup_window`` (its ``event_ids`` index is pruned after
it), so before writing, the importer reads which of these ids the project's events
already hold and skips those rows: importing the same file again, a day or years
later, stores nothing new. Spend rows replace the row of the same (date, channel,
campaign), so they are idempotent by themselves.

Events go through the ingest pipeline (validation, scrubbing, enrichment) as any
event does, with ``max_event_age`` lifted so that history keeps its real times, and
are written by the writer of a :class:`~shopwatch.runtime.Runtime` the caller opened on
the data directory. The event store (DuckDB) takes one writing process: the server
must be stopped while importing.

The row-to-event functions (:func:`to_events`) and the readers are pure; only
:func:`import_events` and :func:`import_spend` touch the stores.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

import msgspec

from shopwatch import events as ev
from shopwatch.ingest import pipeline

if TYPE_CHECKING:
    from shopwatch.runtime import Runtime
    from shopwatch.store.state import Project, StateStore

KINDS: Final = ("contacts", "orders", "customers", "spend")
EVENT_KINDS: Final = ("contacts", "orders", "customers")
BATCH: Final = 1000
# History may be decades old: the pipeline's max_event_age is lifted to this for imports.
MAX_AGE_S: Final = 200 * 365 * 86400.0
FUTURE_SKEW_MS: Final = 300_000
MAX_BAD_ROWS: Final = 10_000  # rows reported one by one; more are only counted
_encode = msgspec.json.Encoder().encode


class RowError(ValueError):
    """A bad row: the field and the reason."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


@dataclass(frozen=True)
class BadRow:
    line: int
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


@dataclass
class Report:
    """What one import did."""

    kind: str
    file: str
    rows: int = 0  # data rows read
    events: int = 0  # events made from good rows
    stored: int = 0  # events (or spend rows) newly stored
    skipped: int = 0  # events already stored by an earlier import
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0

    def add_bad(self, line: int, field_name: str, reason: str) -> None:
        self.bad_count += 1
        if len(self.bad) < MAX_BAD_ROWS:
            self.bad.append(BadRow(line, field_name, reason))

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": self.file, "rows": self.rows,
                "events": self.events, "stored": self.stored, "skipped": self.skipped,
                "bad_rows": self.bad_count, "errors": [b.as_dict() for b in self.bad]}


# --- reading files ----------------------------------------------------------------------


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def count_rows(path: Path) -> int:
    """Data rows in the file (for the progress bar)."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` of every data row; column names stripped and lower-cased, empty
    cells absent. Raises ValueError for a file that cannot be read at all."""
    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            table = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several kinds
            raise ValueError(f"{path}: not a Parquet file ({exc})") from None
        line = 1
        for batch in table.iter_batches(batch_size=BATCH):
            for record in batch.to_pylist():
                line += 1
                yield line, {str(k).strip().lower(): v for k, v in record.items()
                             if v is not None and v != ""}
        return
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file (a header row is needed)") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a UTF-8 CSV file ({exc})") from None
        names = [h.strip().lower() for h in header]
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: not UTF-8 after line {reader.line_num} "
                                 f"({exc})") from None
            except csv.Error as exc:
                raise ValueError(f"{path}: line {reader.line_num}: {exc}") from None
            if not any(v.strip() for v in values):
                continue
            yield reader.line_num, {n: v.strip() for n, v in zip(names, values, strict=False)
                                    if n and v.strip() != ""}


def check_header(kind: str, columns: set[str]) -> str | None:
    """What required column the file lacks (``None``: none)."""
    for need in REQUIRED[kind]:
        if not any(name in columns for name in need):
            return f"header: missing column {' or '.join(need)}"
    return None


def columns_of(path: Path) -> set[str]:
    if is_parquet(path):
        import pyarrow.parquet as pq

        try:
            return {n.strip().lower() for n in pq.ParquetFile(path).schema_arrow.names}
        except Exception as exc:
            raise ValueError(f"{path}: not a Parquet file ({exc})") from None
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            header = next(csv.reader(handle), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ValueError(f"{path}: not a UTF-8 CSV file ({exc})") from None
    return {h.strip().lower() for h in header}


REQUIRED: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "contacts": (("contact_id",), ("queued_at",)),
    "orders": (("order_id",), ("ordered_at",), ("value",)),
    "customers": (("user_id", "customer_id"), ("created_at", "first_seen")),
    "spend": (("date",), ("channel",), ("campaign",), ("cost",)),
}


# --- rows to events ------------------------------------------------------------------------


def _first(row: dict[str, Any], *names: str) -> tuple[str, Any]:
    for name in names:
        if name in row:
            return name, row[name]
    return names[0], None


def parse_time(name: str, value: Any, tz: ZoneInfo, now_ms: float) -> int:
    """Epoch ms of a time cell: RFC 3339 (a time without an offset, or a date alone, is
    read in the project's time zone), epoch milliseconds, or a Parquet timestamp."""
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=tz)
    elif isinstance(value, date):
        parsed = datetime.combine(value, dtime(0), tzinfo=tz)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        parsed = datetime.fromtimestamp(float(value) / 1000, tz)
    else:
        text = str(value).strip()
        if text.isdigit():
            return parse_time(name, int(text), tz, now_ms)
        try:
            parsed = datetime.fromisoformat(text.upper().replace(" ", "T", 1))
        except ValueError:
            raise RowError(name, f"{text!r} is not a date, an RFC 3339 time nor epoch "
                                 "milliseconds") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
    ms = int(parsed.timestamp() * 1000)
    if ms > now_ms + FUTURE_SKEW_MS:
        raise RowError(name, f"{value!s} is in the future")
    if ms < 0:
        raise RowError(name, f"{value!s} is before 1970")
    return ms


def _number(name: str, value: Any, *, low: float = 0.0) -> float:
    try:
        number = float(value) if not isinstance(value, str) else float(
            value.strip().replace(",", "."))
    except (TypeError, ValueError):
        raise RowError(name, f"{value!r} is not a number") from None
    if math.isnan(number) or math.isinf(number) or number < low or number > ev.MONEY_LIMIT:
        raise RowError(name, f"{value!r} must be a number from {low:g}")
    return number


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "y", "1"):
        return True
    if text in ("false", "no", "n", "0"):
        return False
    raise RowError(name, f"{value!r} is not true or false")


def _ident(name: str, value: Any, limit: int = ev.MAX_ID_LENGTH) -> str:
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    if not text:
        raise RowError(name, "missing")
    if len(text) > limit:
        raise RowError(name, f"longer than {limit} characters")
    return text


def event_id(kind: str, key: str, suffix: str = "") -> str:
    """The deterministic id of an imported row's event (a hash when the row's id would
    make it longer than an event id may be)."""
    tail = f":{suffix}" if suffix else ""
    plain = f"import:{kind}:{key}{tail}"
    if len(plain) <= ev.MAX_ID_LENGTH:
        return plain
    return f"import:{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}{tail}"


def _user(row: dict[str, Any], event: dict[str, Any]) -> None:
    name, value = _first(row, "user_id", "customer_id", "customer")
    if value is not None:
        event["user_id"] = _ident(name, value)


def _channel_source(row: dict[str, Any], event: dict[str, Any]) -> None:
    name, value = _first(row, "utm_source", "channel", "acquisition_channel", "source")
    if value is not None:
        text = str(value).strip().lower()
        if len(text) > ev.MAX_UTM_LENGTH:
            raise RowError(name, f"longer than {ev.MAX_UTM_LENGTH} characters")
        event["utm_source"] = text
    for key in ("utm_medium", "utm_campaign"):
        if key in row:
            event[key] = str(row[key])[: ev.MAX_UTM_LENGTH]


def contact_event(row: dict[str, Any], tz: ZoneInfo, now_ms: float) -> list[dict[str, Any]]:
    cid = _ident("contact_id", row.get("contact_id", ""))
    queued = parse_time("queued_at", row.get("queued_at", ""), tz, now_ms) \
        if "queued_at" in row else None
    if queued is None:
        raise RowError("queued_at", "missing")
    params: dict[str, Any] = {"contact_id": cid, "queued_at": queued,
                              "channel": str(row.get("channel", "other")).strip().lower()}
    for name in ("answered_at", "abandoned_at"):
        if name in row:
            params[name] = parse_time(name, row[name], tz, now_ms)
    # The API's own contact rules (channel, order of the times, answered or abandoned),
    # reported under the file's column name.
    error = ev.check_params(params)
    if error is not None:
        where, _, why = error.partition(": ")
        raise RowError(where.removeprefix("params."), why)
    for name in ("talk_s", "hold_s", "acw_s"):
        if name in row:
            params[name] = _number(name, row[name])
    if "first_contact_resolved" in row:
        params["first_contact_resolved"] = _bool("first_contact_resolved",
                                                 row["first_contact_resolved"])
    for name in ("agent", "reason"):
        if name in row:
            params[name] = _ident(name, row[name], ev.MAX_PARAM_STRING_LENGTH)
    name, order = _first(row, "transaction_id", "order_id")
    if order is not None:
        params["transaction_id"] = _ident(name, order)
    event: dict[str, Any] = {"name": "support_contact", "id": event_id("contacts", cid),
                             "ts": queued, "params": params}
    _user(row, event)
    return [event]


def order_events(row: dict[str, Any], tz: ZoneInfo, now_ms: float, currency: str,
                 ) -> list[dict[str, Any]]:
    oid = _ident("order_id", row.get("order_id", ""))
    if "ordered_at" not in row:
        raise RowError("ordered_at", "missing")
    at = parse_time("ordered_at", row["ordered_at"], tz, now_ms)
    if "value" not in row:
        raise RowError("value", "missing")
    value = _number("value", row["value"])
    cur = str(row.get("currency", currency)).strip().upper()
    if not ev.CURRENCY_RE.fullmatch(cur):
        raise RowError("currency", f"{cur!r} is not an ISO 4217 code like EUR")
    params: dict[str, Any] = {"transaction_id": oid, "value": value, "currency": cur}
    for name in ("payment_method", "tax", "shipping", "coupon"):
        if name in row:
            params[name] = (_number(name, row[name]) if name in ("tax", "shipping")
                            else str(row[name])[: ev.MAX_DEVICE_FIELD_LENGTH])
    purchase: dict[str, Any] = {"name": "purchase", "id": event_id("orders", oid), "ts": at,
                                "params": params}
    _user(row, purchase)
    _channel_source(row, purchase)
    out = [purchase]
    if "refunded_value" in row or "refunded_at" in row:
        if "refunded_at" not in row:
            raise RowError("refunded_at", "missing (a refund needs its date)")
        refunded_at = parse_time("refunded_at", row["refunded_at"], tz, now_ms)
        if refunded_at < at:
            raise RowError("refunded_at", "precedes ordered_at")
        refund_params: dict[str, Any] = {"transaction_id": oid, "currency": cur}
        if "refunded_value" in row:  # without it, the whole order was refunded
            refunded = _number("refunded_value", row["refunded_value"])
            if refunded > value:
                raise RowError("refunded_value", f"{refunded:g} is more than the order's "
                                                 f"value {value:g}")
            refund_params["value"] = refunded
        refund: dict[str, Any] = {"name": "refund", "id": event_id("orders", oid, "refund"),
                                  "ts": refunded_at, "params": refund_params}
        if "user_id" in purchase:
            refund["user_id"] = purchase["user_id"]
        out.append(refund)
    return out


def customer_event(row: dict[str, Any], tz: ZoneInfo, now_ms: float) -> list[dict[str, Any]]:
    name, user = _first(row, "user_id", "customer_id")
    uid = _ident(name, user if user is not None else "")
    name, created = _first(row, "created_at", "first_seen")
    if created is None:
        raise RowError("created_at", "missing")
    event: dict[str, Any] = {"name": "sign_up", "id": event_id("customers", uid),
                             "ts": parse_time(name, created, tz, now_ms), "user_id": uid}
    _channel_source(row, event)
    return [event]


def to_events(kind: str, row: dict[str, Any], *, timezone: str = "UTC", currency: str = "USD",
              now_ms: float | None = None) -> list[dict[str, Any]]:
    """The events of one row of ``kind`` (module docstring); raises :class:`RowError`."""
    tz = ZoneInfo(timezone)
    now = time.time() * 1000 if now_ms is None else now_ms
    if kind == "contacts":
        return contact_event(row, tz, now)
    if kind == "orders":
        return order_events(row, tz, now, currency)
    if kind == "customers":
        return customer_event(row, tz, now)
    raise ValueError(f"kind: {kind!r} is not one of {', '.join(EVENT_KINDS)}")


# --- writing ----------------------------------------------------------------------------


class FileRejected(ValueError):
    """The file as a whole cannot be imported (the message says why)."""


def existing_ids(runtime: Runtime, project_id: int, kind: str) -> set[str]:
    """Ids of events an earlier import of ``kind`` stored in the project."""
    prefix = f"import:{kind}:"
    rows = runtime.events.query(
        "SELECT id FROM events WHERE project_id = ? AND starts_with(id, ?)",
        [project_id, prefix])
    return {str(r[0]) for r in rows}


def import_events(runtime: Runtime, project: Project, kind: str, path: Path, *,
                  progress: Callable[[int], None] | None = None) -> Report:
    """Import a file of ``kind`` (contacts, orders, customers) into ``project`` through
    ``runtime``'s pipeline and writer (started by the caller); see the module docstring.
    ``progress`` is called with the number of rows read since its last call."""
    if kind not in EVENT_KINDS:
        raise FileRejected(f"kind: {kind!r} is not one of {', '.join(EVENT_KINDS)}")
    report = Report(kind, str(path))
    missing = check_header(kind, columns_of(path))
    if missing is not None:
        raise FileRejected(f"{path}: {missing}")
    config = dataclasses.replace(runtime.pipeline, max_event_age_s=MAX_AGE_S,
                                 max_events=max(BATCH * 2, runtime.pipeline.max_events))
    seen = existing_ids(runtime, project.id, kind)
    in_file: dict[str, int] = {}
    now_ms = time.time() * 1000
    batch: list[dict[str, Any]] = []
    lines: list[int] = []

    def flush() -> None:
        if not batch:
            return
        outcome = pipeline.process(_encode(batch), pipeline.Format.JSON, project.id,
                                   time.time_ns() // 1000, config)
        failed_lines = set()
        for rejected in outcome.rejected:
            line = lines[int(rejected["index"])]
            failed_lines.add(line)
            where, _, why = str(rejected["error"]).partition(": ")
            report.add_bad(line, where, why or where)
        report.events += outcome.rows.n
        if outcome.rows.n:
            report.stored += runtime.writer.submit(outcome.rows).result(timeout=120)
        batch.clear()
        lines.clear()

    pending = 0
    for line, row in read_rows(path):
        report.rows += 1
        pending += 1
        try:
            made = to_events(kind, row, timezone=project.timezone, currency=project.currency,
                             now_ms=now_ms)
        except RowError as exc:
            report.add_bad(line, exc.field, exc.reason)
            made = []
        if made:
            first_id = str(made[0]["id"])
            if first_id in in_file:
                report.add_bad(line, "id", f"the same row id as line {in_file[first_id]}; "
                                           "this row is skipped")
                made = []
            else:
                in_file[first_id] = line
        for event in made:
            if event["id"] in seen:
                report.skipped += 1
                continue
            batch.append(event)
            lines.append(line)
        if len(batch) >= BATCH:
            flush()
        if progress is not None and pending >= 200:
            progress(pending)
            pending = 0
    flush()
    if progress is not None and pending:
        progress(pending)
    return report


def import_spend(state: StateStore, project: Project, path: Path, *,
                 progress: Callable[[int], None] | None = None) -> Report:
    """Spend rows (:mod:`shopwatch.spend`): each replaces the stored row of its date,
    channel and campaign."""
    from shopwatch import spend

    report = Report("spend", str(path))
    missing = check_header("spend", columns_of(path))
    if missing is not None:
        raise FileRejected(f"{path}: {missing}")
    rows: list[spend.SpendRow] = []
    for line, raw in read_rows(path):
        report.rows += 1
        if isinstance(raw.get("date"), date | datetime):
            raw["date"] = (raw["date"].date() if isinstance(raw["date"], datetime)
                           else raw["date"]).isoformat()
        try:
            rows.append(spend.parse_row(raw, project.currency))
        except ValueError as exc:
            where, _, why = str(exc).partition(": ")
            report.add_bad(line, where, why or where)
        if len(rows) > spend.MAX_ROWS:
            raise FileRejected(f"{path}: at most {spend.MAX_ROWS} rows in one import")
        if progress is not None:
            progress(1)
    report.events = len(rows)
    report.stored = spend.store_rows(state, project.id, rows)
    return report
