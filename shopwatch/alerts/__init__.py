"""Alerts: rules, SLOs, incidents and the notifications they send (issue 8).

- :mod:`shopwatch.alerts.channels`: where notifications go — one small transport per
  kind (``webhook``, ``email``, ``apprise``), each with one ``notify()`` method.
- :mod:`shopwatch.alerts.delivery`: the outbox — every notification to every channel is
  a row in ``deliveries``, sent by a restartable worker with retries and backoff.
"""
