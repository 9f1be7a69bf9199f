"""The ``browser_flow`` monitor kind: page steps in headless Chromium, driven by Playwright.

Contract:

- Each run is a child process (:mod:`.browser_session`) in its own process group, with
  the system's Chromium (``chromium`` or ``chromium-browser`` on the ``PATH``; never a
  downloaded browser). The monitor's ``timeout`` (60 s by default) is a hard limit: the
  child gives each action the time left, and the parent kills the whole group —
  Chromium included — when the child has not answered ``KILL_GRACE_S`` after it.
- At most ``BROWSER_SLOTS`` flows run at once in a process (each Chromium takes a few
  hundred MB); a flow waiting for a slot waits inside its check's own slot.
- The server's address policy holds in the browser too: unless the policy is
  unrestricted (the pre-release gate), Chromium's only way out is the guarded proxy of
  :mod:`.proxy`. (Tests' resolver seam does not reach the child: it resolves with the
  system's resolver.)
- On a failing step the run keeps a full-page screenshot and the page's HTML in
  ``context.artifacts`` (named ``<time>-<step>.png``/``.html``; the newest
  ``KEEP_ARTIFACTS`` files of a monitor are kept).
- Without Chromium or Playwright the check fails and says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Final

import msgspec

from shopwatch.checks.http import Context
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.result import CheckResult, StepResult

# How Shopwatch launches Chromium (flows, the demo's shopper, the browser tests): no
# sandbox (containers), no GPU, nothing fetched in the background.
CHROMIUM_FLAGS: Final = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update",
                         "--disable-default-apps", "--no-first-run")
BROWSER_SLOTS: Final = 2
KILL_GRACE_S: Final = 15.0  # Playwright's driver and Chromium start within this
KEEP_ARTIFACTS: Final = 40
_slots = threading.BoundedSemaphore(BROWSER_SLOTS)


def find_chromium() -> str | None:
    """The system Chromium's path, if there is one on the ``PATH``."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why a browser flow cannot run here, or ``None`` if it can."""
    import importlib.util

    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed"
    if find_chromium() is None:
        return "no system Chromium on the PATH (install the `chromium` package)"
    return None


def _failed(monitor: Monitor, reason: str) -> CheckResult:
    step = StepResult(name="browser", url="", method="BROWSER")
    step.fail(reason)
    return CheckResult.of(monitor, [step])


def slug(name: str) -> str:
    """A monitor's name as a directory name (names are letters, digits, space _ . -)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "monitor"


def prune(folder: Path, keep: int = KEEP_ARTIFACTS) -> None:
    """Remove all but the newest ``keep`` files of ``folder``."""
    try:
        files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)
    except OSError:
        return
    for old in files[:-keep] if keep else files:
        old.unlink(missing_ok=True)


class BrowserFlowKind:
    """``kind: browser_flow``."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        from shopwatch.checks.browser_session import Job, Report

        reason = unavailable()
        chromium = find_chromium()
        if reason is not None or chromium is None:
            return _failed(monitor, f"cannot run a browser flow: {reason}")
        policy = context.policy
        started_at = time.time()
        folder = context.artifacts / slug(monitor.name) if context.artifacts else None
        job = Job(monitor=monitor, chromium=chromium, timeout_s=monitor.timeout_s,
                  base_url=context.base_url,
                  networks=None if policy.unrestricted else [str(n) for n in policy.networks],
                  hosts=None if policy.unrestricted else sorted(policy.hosts),
                  artifacts=str(folder) if folder else None,
                  prefix=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_at)))
        with _slots:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shopwatch.checks.browser_session"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True)
            try:
                out, err = proc.communicate(msgspec.json.encode(job),
                                            timeout=monitor.timeout_s + KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                _kill(proc)
                return _failed(monitor, f"the browser did not finish within "
                                        f"{monitor.timeout_s + KILL_GRACE_S:g}s and was "
                                        "killed")
            finally:
                _kill(proc)  # Chromium and the driver, whatever the child left behind
        if folder is not None:
            prune(folder)
        try:
            report = msgspec.json.decode(out, type=Report)
        except msgspec.DecodeError:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return _failed(monitor, f"the browser run failed: {tail[0][:300]}")
        steps = [_step(s) for s in report.steps]
        if report.error is not None:
            failure = StepResult(name="browser", url="", method="BROWSER")
            failure.fail(report.error)
            steps.append(failure)
        result = CheckResult.of(monitor, steps)
        result.started_at = started_at
        return result


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


def _step(data: dict[str, object]) -> StepResult:
    return msgspec.convert(data, StepResult)
