"""Converting order values to a project's base currency, with documented fixed rates.

The rates are units of each currency per 1 EUR: the euro foreign exchange reference
rates of the European Central Bank for 2026-11-20, rounded to four significant digits
(docs/kpis.md lists them). They are fixed on purpose: a KPI must not change when it is
recomputed tomorrow. A currency not in the table is not converted; the KPIs report its
sums apart (``unconverted``) instead of guessing.
"""

from __future__ import annotations

from typing import Final

# Units per 1 EUR.
RATES: Final[dict[str, float]] = {
    "EUR": 1.0, "USD": 1.053, "GBP": 0.8342, "CHF": 0.9312, "JPY": 162.4, "CAD": 1.471,
    "AUD": 1.619, "SEK": 11.52, "NOK": 11.73, "DKK": 7.459, "PLN": 4.331, "CZK": 25.27,
    "HUF": 408.9, "RON": 4.977, "BGN": 1.956, "CNY": 7.624, "INR": 88.95, "BRL": 6.108,
    "MXN": 21.49, "NZD": 1.794, "SGD": 1.414, "HKD": 8.196, "KRW": 1470.0, "ZAR": 19.08,
    "TRY": 36.41,
}


def rate_sql(base: str, column: str = "cur") -> str:
    """A DuckDB ``CASE`` over ``column`` giving the factor that turns an amount in that
    currency into ``base`` (NULL for a currency not in :data:`RATES`). A NULL currency is
    taken as the base currency: the shop did not say, and it sells in its own."""
    base_rate = RATES.get(base.upper())
    if base_rate is None:
        return "NULL"
    arms = " ".join(f"WHEN '{code}' THEN {base_rate / rate!r}::DOUBLE"
                    for code, rate in RATES.items())
    return f"(CASE COALESCE(upper({column}), '{base.upper()}') {arms} ELSE NULL END)"
