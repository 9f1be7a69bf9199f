"""Marketing spend: what a shop paid per day, channel and campaign, uploaded as CSV or JSON.

Contract: a row is ``date`` (YYYY-MM-DD), ``channel`` (the ad platform as it appears in
``utm_source``, e.g. google, facebook), ``campaign`` (as in ``utm_campaign``), ``cost``
(a non-negative number) and optionally ``currency`` (ISO 4217, default the project's).
Uploading a row for a (date, channel, campaign) that exists replaces it, so a corrected
export can be uploaded again. Bad rows are reported with their line (CSV, counting the
header as line 1) or index (JSON) and the field; good rows are kept.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

import sqlalchemy as sa

from shopwatch.store.state import StateStore, check_currency, marketing_spend

MAX_ROWS: Final = 100_000
FIELDS: Final = ("date", "channel", "campaign", "cost", "currency")


@dataclass(frozen=True)
class SpendRow:
    day: date
    channel: str
    campaign: str
    cost: float
    currency: str


def parse_row(raw: dict[str, Any], default_currency: str) -> SpendRow:
    """One row, or ValueError ``"<field>: <reason>"``."""
    def text(name: str, limit: int) -> str:
        value = str(raw.get(name) or "").strip()
        if not value:
            raise ValueError(f"{name}: missing")
        if len(value) > limit:
            raise ValueError(f"{name}: longer than {limit} characters")
        return value

    try:
        day = date.fromisoformat(text("date", 10))
    except ValueError as exc:
        if str(exc).startswith("date:"):
            raise
        raise ValueError(f"date: {raw.get('date')!r} is not YYYY-MM-DD") from None
    channel, campaign = text("channel", 100).lower(), text("campaign", 200)
    cost_raw = raw.get("cost")
    try:
        cost = float(str(cost_raw).strip()) if not isinstance(cost_raw, int | float) else float(
            cost_raw)
    except ValueError:
        raise ValueError(f"cost: {cost_raw!r} is not a number") from None
    if cost != cost or cost < 0 or cost > 1e12:
        raise ValueError(f"cost: {cost_raw!r} must be a number from 0 to 10^12")
    currency_raw = str(raw.get("currency") or default_currency)
    try:
        currency = check_currency(currency_raw)
    except Exception:
        raise ValueError(f"currency: {currency_raw!r} is not an ISO 4217 code") from None
    return SpendRow(day, channel, campaign, cost, currency)


def parse(body: bytes, content_type: str, default_currency: str
          ) -> tuple[list[SpendRow], list[dict[str, Any]]]:
    """Rows and errors from a CSV (header row with the field names) or JSON body
    (``{"rows": [...]}`` or a bare array)."""
    rows: list[SpendRow] = []
    errors: list[dict[str, Any]] = []
    if "json" in content_type:
        import msgspec

        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise ValueError(f"body: not JSON ({exc})") from None
        items = data.get("rows") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValueError('body: expected {"rows": [...]} or an array of rows')
        if len(items) > MAX_ROWS:
            raise ValueError(f"body: at most {MAX_ROWS} rows")
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ValueError("row: expected an object")
                rows.append(parse_row(item, default_currency))
            except ValueError as exc:
                errors.append({"index": index, "error": str(exc)})
        return rows, errors
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"body: not UTF-8 at byte {exc.start}") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [f for f in ("date", "channel", "campaign", "cost") if f not in header]
    if missing:
        raise ValueError(f"header: missing column(s) {', '.join(missing)} "
                         f"(expected {', '.join(FIELDS)})")
    reader.fieldnames = header
    for line, record in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            raise ValueError(f"body: at most {MAX_ROWS} rows")
        try:
            rows.append(parse_row(record, default_currency))
        except ValueError as exc:
            errors.append({"line": line, "error": str(exc)})
    return rows, errors


def store_rows(state: StateStore, project_id: int, rows: list[SpendRow]) -> int:
    """Insert or replace rows; returns how many."""
    now = datetime.now(UTC)
    t = marketing_spend
    with state.engine.begin() as conn:
        for row in rows:
            conn.execute(t.delete().where(
                (t.c.project_id == project_id) & (t.c.day == row.day)
                & (t.c.channel == row.channel) & (t.c.campaign == row.campaign)))
            conn.execute(t.insert().values(
                project_id=project_id, day=row.day, channel=row.channel,
                campaign=row.campaign, cost=row.cost, currency=row.currency, uploaded_at=now))
    return len(rows)


def spend_between(state: StateStore, project_id: int, first: date, last: date
                  ) -> list[SpendRow]:
    """Rows of days ``first`` to ``last`` inclusive."""
    t = marketing_spend
    with state.engine.connect() as conn:
        found = conn.execute(sa.select(t.c.day, t.c.channel, t.c.campaign, t.c.cost,
                                       t.c.currency).where(
            (t.c.project_id == project_id) & (t.c.day >= first) & (t.c.day <= last))).all()
    return [SpendRow(*r) for r in found]
