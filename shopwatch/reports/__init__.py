"""Scheduled reports: a project's technical or business report of a day or a week,
downloadable as HTML and PDF and e-mailed on a schedule (docs/reports.md).

- :mod:`.periods`: the periods (local days, ISO weeks) and when a schedule is due;
- :mod:`.content`: a report's figures, from the analytics modules;
- :mod:`.render`: the HTML (charts drawn by ECharts as static SVG in headless Chromium)
  and the PDF of the same page;
- :mod:`.mail`: the e-mail (an HTML body that reads without charts, the PDF attached);
- :mod:`.loop`: the loop in ``shopwatch serve`` that sends what is due.

Schedules are stored by :mod:`shopwatch.store.reports`.
"""

from __future__ import annotations

from typing import Final

AUDIENCES: Final = ("technical", "business")
