"""A report as a self-contained HTML page and as a PDF of the same page.

Contract (docs/reports.md, "HTML and PDF"):

- One Jinja2 template (``web/templates/report.html``) renders a report of
  :mod:`.content` with its CSS inline and no external URL, in one of three modes:
  ``charts`` (chart figures carrying their ECharts option, for the browser), ``tables``
  (each chart's figures as a table, with a note saying why there are no charts) and
  ``email`` (tables only: mail clients drop SVG and scripts; the PDF is attached).
- :func:`render` launches the system Chromium once (Playwright, ``executable_path``;
  never a downloaded browser), loads the ``charts`` page with every network request
  refused, draws each chart with the vendored ECharts' SVG renderer (server-side mode,
  no animation), replaces the figures by the static SVG, removes every script and the
  tables that stood in for the charts, and keeps the serialised DOM as the HTML; the
  PDF (A4, print CSS, page numbers) is printed from that same page.
- Without Chromium (or Playwright, or the vendored ECharts) the HTML is the ``tables``
  page with the reason, and there is no PDF (``Rendered.pdf`` is None, ``reason`` says
  why): the API answers 503 for a PDF then.
- At most :data:`SLOTS` renders run at once in a process: each Chromium takes a few
  hundred MB.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import jinja2

from shopwatch.checks.browser_flow import CHROMIUM_FLAGS, find_chromium, unavailable

TEMPLATES: Final = Path(__file__).resolve().parent.parent / "web" / "templates"
ECHARTS: Final = (Path(__file__).resolve().parent.parent / "web" / "static" / "vendor"
                  / "echarts.min.js")
SLOTS: Final = 2
TIMEOUT_MS: Final = 30_000
CHART_WIDTH: Final = 680  # CSS px: the printable width of A4 with the PDF's margins
CHART_HEIGHT: Final = 260
ACCENT: Final = "#1f6feb"
PREVIOUS: Final = "#9aa4b2"
DASH: Final = "\u2013"  # what a figure without a value shows, as on the dashboard
_slots = threading.BoundedSemaphore(SLOTS)

# Drawn in the page: every figure's option becomes static SVG (ECharts' server-side SVG
# mode, so no timer or animation is left behind), then the scripts and the tables that
# stood in for the charts go. Returns how many charts were drawn.
_DRAW_JS: Final = """() => {
  let drawn = 0;
  document.querySelectorAll('figure[data-option]').forEach((fig) => {
    const option = JSON.parse(fig.dataset.option);
    option.animation = false;
    const chart = echarts.init(null, null, {renderer: 'svg', ssr: true,
      width: Number(fig.dataset.width), height: Number(fig.dataset.height)});
    chart.setOption(option);
    fig.insertAdjacentHTML('afterbegin', chart.renderToSVGString());
    chart.dispose();
    fig.removeAttribute('data-option');
    const stand_in = document.querySelector('[data-stands-for="' + fig.dataset.chart + '"]');
    if (stand_in) stand_in.remove();
    drawn += 1;
  });
  document.querySelectorAll('script').forEach((s) => s.remove());
  return drawn;
}"""
_FOOTER: Final = ('<div style="font: 8px sans-serif; color: #5b6675; width: 100%; '
                  'text-align: center;">{label} · page <span class="pageNumber"></span> of '
                  '<span class="totalPages"></span></div>')


@dataclass(frozen=True)
class Rendered:
    """A rendered report: its HTML (no script), its PDF (None without Chromium), whether
    the charts were drawn, and why not (or why there is no PDF)."""

    html: str
    pdf: bytes | None
    charts: bool
    reason: str | None = None


# --- formatting -------------------------------------------------------------------------------


def fmt_number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def fmt_money(value: float | None, currency: str) -> str:
    return DASH if value is None else f"{value:,.2f} {currency}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value * 100:.{digits}f} %"


def fmt_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``, ``3 d 4 h``."""
    if seconds is None:
        return DASH
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def fmt_value(value: float | None, fmt: str, currency: str = "") -> str:
    """A figure as its format says: ``int``, ``money``, ``pct``, ``ms``, ``s``, ``cls``."""
    if fmt == "money":
        return fmt_money(value, currency)
    if fmt == "pct":
        return fmt_pct(value)
    if fmt == "ms":
        return DASH if value is None else f"{value:,.0f} ms"
    if fmt == "s":
        return fmt_duration(value)
    if fmt == "cls":
        return DASH if value is None else f"{value:.3f}"
    return fmt_number(value)


def change(value: float | None, previous: float | None, fmt: str,
           better: str = "up") -> dict[str, str]:
    """The change from ``previous`` to ``value`` in words, and whether it is good:
    ratios (``pct``) in percentage points, the rest relative. ``cls`` is ``good``,
    ``bad`` or ``same``; ``better`` says which way is good (``up`` or ``down``)."""
    if value is None or previous is None:
        return {"text": DASH, "cls": "same"}
    if fmt == "pct":
        diff = (value - previous) * 100
        text = "no change" if abs(diff) < 0.05 else f"{diff:+.1f} pp"
    elif previous == 0:
        diff = value
        text = "no change" if value == 0 else "new"
    else:
        diff = (value - previous) / abs(previous) * 100
        text = "no change" if abs(diff) < 0.05 else f"{diff:+.1f} %"
    if text == "no change" or diff == 0:
        return {"text": text, "cls": "same"}
    good = diff > 0 if better == "up" else diff < 0
    return {"text": text, "cls": "good" if good else "bad"}


def local_time(iso: str | None, timezone: str, fmt: str = "%a %d %b %H:%M") -> str:
    if not iso:
        return DASH
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(
        ZoneInfo(timezone)).strftime(fmt)


# --- charts -------------------------------------------------------------------------------------


def _axis_min(values: list[float]) -> float:
    """A floor for an availability axis in %: near 100 % the bars must still differ."""
    low = min(values, default=100.0)
    return max(0.0, math.floor(low / 5) * 5 - 5) if low < 100 else 90.0


def chart_options(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ECharts option of each chart of the report, by name (every chart has a title
    of its own, drawn as text in the SVG and so in the PDF)."""
    base: dict[str, Any] = {"animation": False, "textStyle": {"fontFamily": "sans-serif"},
                            "grid": {"left": 60, "right": 24, "top": 48, "bottom": 40,
                                     "containLabel": True},
                            "legend": {"top": 22, "right": 10, "itemWidth": 14,
                                       "textStyle": {"fontSize": 11}}}
    currency = report["project"]["currency"]
    out: dict[str, dict[str, Any]] = {}
    availability = report.get("availability")
    if availability and availability["overall"]["runs"]:
        ms = availability["monitors"]
        names = [m["name"] for m in ms]
        now = [None if m["availability"] is None else round(m["availability"] * 100, 3)
               for m in ms]
        before = [None if m["previous"] is None else round(m["previous"] * 100, 3) for m in ms]
        out["availability"] = {
            **base, "title": {"text": "Availability per monitor (%)", "textStyle": {
                "fontSize": 13}},
            "grid": {**base["grid"], "left": 10},
            "yAxis": {"type": "category", "data": names, "inverse": True},
            "xAxis": {"type": "value", "max": 100,
                      "min": _axis_min([v for v in [*now, *before] if v is not None])},
            "series": [{"name": "this period", "type": "bar", "data": now,
                        "itemStyle": {"color": ACCENT},
                        "label": {"show": True, "position": "right", "fontSize": 10}},
                       {"name": "previous", "type": "bar", "data": before,
                        "itemStyle": {"color": PREVIOUS}}]}
    vitals = report.get("vitals")
    if vitals and vitals["trend"]:
        lcp = vitals["metrics"]["lcp"]
        out["lcp"] = {
            **base, "title": {"text": "LCP at p75 over the period (ms)",
                              "textStyle": {"fontSize": 13}},
            "xAxis": {"type": "category", "data": [r["label"] for r in vitals["trend"]]},
            "yAxis": {"type": "value"},
            "series": [{"name": "LCP p75", "type": "line", "showSymbol": False,
                        "data": [r["lcp"] for r in vitals["trend"]], "connectNulls": False,
                        "itemStyle": {"color": ACCENT},
                        "markLine": {"symbol": "none", "silent": True, "data": [
                            {"yAxis": lcp["good"], "name": "good",
                             "lineStyle": {"color": "#1a7f37", "type": "dashed"}},
                            {"yAxis": lcp["poor"], "name": "poor",
                             "lineStyle": {"color": "#cf222e", "type": "dashed"}}],
                            "label": {"formatter": "{b} {c}", "fontSize": 10,
                                      "position": "insideEndTop"}}}]}
    over_time = report.get("orders_over_time")
    if over_time and over_time["rows"]:
        rows = over_time["rows"]
        unit = "hour" if over_time["interval"] == "hour" else "day"
        out["orders_over_time"] = {
            **base, "title": {"text": f"Order value per {unit} ({currency})",
                              "textStyle": {"fontSize": 13}},
            "xAxis": {"type": "category", "data": [r["label"] for r in rows]},
            "yAxis": {"type": "value"},
            "series": [{"name": "this period", "type": "bar",
                        "data": [r["revenue"] for r in rows], "itemStyle": {"color": ACCENT}},
                       {"name": "previous", "type": "line", "symbol": "none",
                        "data": [r["previous_revenue"] for r in rows],
                        "lineStyle": {"color": PREVIOUS, "type": "dashed"},
                        "itemStyle": {"color": PREVIOUS}}]}
    top = report.get("top_products")
    if top:
        out["top_products"] = {
            **base, "title": {"text": f"Revenue of the top products ({currency})",
                              "textStyle": {"fontSize": 13}},
            "legend": {"show": False}, "grid": {**base["grid"], "left": 10},
            "yAxis": {"type": "category", "inverse": True,
                      "data": [str(p.get("name") or p["product"])[:40] for p in top]},
            "xAxis": {"type": "value"},
            "series": [{"name": "revenue", "type": "bar",
                        "data": [round(p["revenue"], 2) for p in top],
                        "itemStyle": {"color": ACCENT}}]}
    return out


# --- HTML and PDF -------------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(number=fmt_number, money=fmt_money, pct=fmt_pct,
                       duration=fmt_duration, value=fmt_value, local=local_time)
    env.globals["change"] = change
    return env


_env = _environment()


def html(report: dict[str, Any], mode: str = "charts", note: str | None = None) -> str:
    """The report's page in ``mode`` (``charts``, ``tables`` or ``email``)."""
    if mode not in ("charts", "tables", "email"):
        raise ValueError(f"mode: {mode!r}")
    options = chart_options(report) if mode == "charts" else {}
    return _env.get_template("report.html").render(
        r=report, mode=mode, note=note, charts={k: json.dumps(v) for k, v in options.items()},
        chart_width=CHART_WIDTH, chart_height=CHART_HEIGHT)


def charts_unavailable() -> str | None:
    """Why charts and PDFs cannot be made here, or None."""
    reason = unavailable()
    if reason is not None:
        return reason
    if not ECHARTS.is_file():
        return f"the vendored ECharts is missing ({ECHARTS}); run `make assets`"
    return None


def render(report: dict[str, Any], *, pdf: bool = True) -> Rendered:
    """The report's HTML with static SVG charts and (with ``pdf``) its PDF, from one
    Chromium; the ``tables`` page and no PDF when Chromium cannot be used."""
    reason = charts_unavailable()
    chromium = find_chromium()
    if reason is not None or chromium is None:
        why = f"Charts and the PDF need Chromium on the server: {reason}."
        return Rendered(html(report, "tables", note=why), None, False, why)
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    page_html = html(report)
    label = f"{report['project']['name']} · {report['title']} · {report['period']['label']}"
    try:
        with _slots, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=list(CHROMIUM_FLAGS))
            try:
                page = browser.new_page(viewport={"width": 800, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                # The report needs nothing from anywhere: a URL that slipped into its
                # content must not reach the network (or this server's neighbours).
                page.route("**/*", lambda route: route.abort())
                page.set_content(page_html, wait_until="load")
                page.add_script_tag(content=ECHARTS.read_text(encoding="utf-8"))
                page.evaluate(_DRAW_JS)
                drawn_html = page.content()
                printed = page.pdf(
                    format="A4", print_background=True, display_header_footer=True,
                    header_template="<span></span>",
                    footer_template=_FOOTER.format(label=_escape(label)),
                    margin={"top": "14mm", "bottom": "16mm", "left": "12mm",
                            "right": "12mm"}) if pdf else None
            finally:
                browser.close()
    except PlaywrightError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        why = f"Charts and the PDF could not be made: Chromium failed: {first[:300]}."
        return Rendered(html(report, "tables", note=why), None, False, why)
    return Rendered(drawn_html, printed, True)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
