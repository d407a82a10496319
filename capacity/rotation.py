"""When credentials rotate on their schedule: the generation a deploy on a given day uses.

``cofounder:postgres`` and ``cofounder:redis`` each have ``credentialsGeneration`` (raise it to
rotate now) and ``credentialsRotationDays`` (rotate every so many days). A deploy uses the
configured generation plus the whole periods since 1970-01-01 (UTC days over the period): the same
value all through a period, one more from its first day, so the first ``pulumi up`` of each new
period rotates (docs/data-tier.md, "Rotation"). The day is today (UTC) unless
``COFOUNDER_ROTATION_DATE`` pins it: the review driver pins it once so that BASE and the working
tree are built for one day, and the tests pin it so that the declared state does not move with
the clock.
"""

from __future__ import annotations

import datetime
import os

ROTATION_DATE_ENV = "COFOUNDER_ROTATION_DATE"
_EPOCH = datetime.date(1970, 1, 1)


def rotation_date() -> datetime.date:
    """The day this run computes generations for: ``COFOUNDER_ROTATION_DATE`` or today (UTC)."""
    pinned = os.environ.get(ROTATION_DATE_ENV)
    return datetime.date.fromisoformat(pinned) if pinned else datetime.datetime.now(datetime.UTC).date()


def effective_generation(generation: int, rotation_days: int | None, on: datetime.date) -> int:
    """``generation`` plus the whole ``rotation_days`` periods from 1970-01-01 to ``on``."""
    return generation + ((on - _EPOCH).days // rotation_days if rotation_days else 0)
