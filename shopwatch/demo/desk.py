"""The demo shop's customer service: how each contact was queued, answered or abandoned,
and handled — what a contact-centre system records and the shop sends as the
``support_contact`` event's params (docs/service-desk.md).

A small desk of :data:`AGENTS`. Waits are exponential, with a mean per channel
(:data:`MEAN_WAIT_S`) that grows ``busy`` times while an incident floods the desk; a
caller or chatter hangs up after an exponential patience (:data:`MEAN_PATIENCE_S`),
e-mails are never abandoned. Talk, hold and after-contact work are long-tailed; about
three contacts in four are resolved at the first contact, fewer when the desk is busy.
Shapes are plausible, not measured from any real desk.
"""

from __future__ import annotations

import math
import random
import secrets
from datetime import datetime, timedelta
from typing import Any, Final

AGENTS: Final = ("Ana", "Ben", "Chloé", "Dev", "Eli", "Farah")
MEAN_WAIT_S: Final = {"phone": 22.0, "chat": 35.0, "email": 3 * 3600.0}
MEAN_PATIENCE_S: Final = {"phone": 120.0, "chat": 240.0}
MEDIAN_TALK_S: Final = {"phone": 240.0, "chat": 420.0, "email": 180.0}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def contact(rng: random.Random, channel: str, queued: datetime, *, busy: float = 1.0
            ) -> dict[str, Any]:
    """The params of one contact queued at ``queued`` (a timezone-aware time) on
    ``channel`` (phone, chat or email); ``busy`` ≥ 1 multiplies waits (an incident)."""
    wait = rng.expovariate(1 / (MEAN_WAIT_S.get(channel, 60.0) * busy))
    params: dict[str, Any] = {"contact_id": f"C-{secrets.token_hex(5).upper()}",
                              "channel": channel, "queued_at": _iso(queued)}
    patience = MEAN_PATIENCE_S.get(channel)
    if patience is not None:
        gives_up = rng.expovariate(1 / patience)
        if gives_up < wait:
            params["abandoned_at"] = _iso(queued + timedelta(seconds=gives_up))
            return params
    params["answered_at"] = _iso(queued + timedelta(seconds=wait))
    talk = rng.lognormvariate(math.log(MEDIAN_TALK_S.get(channel, 240.0)), 0.5)
    params["talk_s"] = round(talk, 1)
    params["hold_s"] = round(rng.uniform(15, 120), 1) if (
        channel == "phone" and rng.random() < 0.3) else 0.0
    params["acw_s"] = round(rng.lognormvariate(math.log(60), 0.4), 1)
    params["first_contact_resolved"] = rng.random() < (0.78 if busy <= 1 else 0.6)
    params["agent"] = rng.choice(AGENTS)
    return params
