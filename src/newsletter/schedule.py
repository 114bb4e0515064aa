"""What is due: the cron schedule of ``newsletter.yml`` evaluated in the newsletter's zone.

The clock is always a parameter, so every answer can be checked against a frozen time.

A schedule is read on the local wall clock (``0 8 * * 2`` is 08:00 on Tuesdays in London
whether it is GMT or BST), and each wall-clock slot is then placed on the time line:

* a slot that falls in the hour skipped when clocks go forward (01:30 on 2026-03-29 in
  Europe/London) is due at the first instant after the gap, 02:00 local, as Vixie cron does;
  several slots inside the gap collapse into that one;
* a slot that falls in the hour repeated when clocks go back (01:30 on 2026-10-25) is due
  once, at its first occurrence (01:30 BST); the repeat is not a second slot.

Only the latest missed slot is ever due, never a backlog: a newsletter that was down for a
fortnight sends one issue when it comes back, not two.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import total_ordering
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from .config import LoadedConfig, ScheduleSettings
from .errors import ScheduleError

CatchUp = Literal["latest", "skip"]

SKIP_GRACE = timedelta(hours=1)
"""With ``catch_up: skip`` a slot is still due this long after its time, so a timer that
fires every 15 minutes (or a few minutes late) does not miss it; later it is dropped."""

EXAMPLE_CRON = "0 8 * * 2"

# Far enough either side of a wall-clock time to step over any DST jump (at most 2 hours
# anywhere) so that the slot nearest to an instant is never skipped.
_MARGIN = timedelta(hours=3)


@total_ordering
@dataclass(frozen=True, eq=False)
class Slot:
    """One scheduled moment; the issue built for it is dated by its local date."""

    due: datetime
    """Timezone-aware, in the schedule's zone."""

    def date(self) -> date:
        return self.due.date()

    @property
    def instant(self) -> datetime:
        """``due`` in UTC, for comparing: Python compares two datetimes that share a tzinfo
        by wall time alone, which puts 01:30 BST after 01:15 GMT in the repeated hour."""
        return self.due.astimezone(UTC)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slot) and self.instant == other.instant

    def __lt__(self, other: Slot) -> bool:
        return self.instant < other.instant

    def __hash__(self) -> int:
        return hash(self.instant)

    def __str__(self) -> str:
        return self.due.isoformat(timespec="minutes")


@dataclass(frozen=True)
class Schedule:
    expression: str
    zone: ZoneInfo
    catch_up: CatchUp = "latest"
    lists: tuple[str, ...] = ()

    def latest_due(self, now: datetime) -> Slot | None:
        """The most recent slot at or before ``now``; missed slots collapse into this one."""
        return self._at_or_before(_utc(now), inclusive=True)

    def next_due(self, now: datetime, count: int = 5) -> list[Slot]:
        """The next ``count`` slots strictly after ``now``."""
        now = _utc(now)
        start = _wall(now, self.zone) - _MARGIN
        upcoming: list[Slot] = []
        for due in self._instants(start, forward=True):
            if due <= now or (upcoming and upcoming[-1].instant == due):
                continue
            upcoming.append(self._slot(due))
            if len(upcoming) >= count:
                break
        return upcoming

    def previous_slot(self, slot: Slot) -> Slot | None:
        return self._at_or_before(slot.instant, inclusive=False)

    def due_now(self, now: datetime) -> Slot | None:
        """The slot a run started at ``now`` should serve, honouring ``catch_up``."""
        slot = self.latest_due(now)
        return slot if slot is not None and is_due(slot, now, self.catch_up) else None

    def _at_or_before(self, instant: datetime, *, inclusive: bool) -> Slot | None:
        start = _wall(instant, self.zone) + _MARGIN
        for due in self._instants(start, forward=False):
            if due < instant or (inclusive and due == instant):
                return self._slot(due)
        return None

    def _slot(self, instant: datetime) -> Slot:
        return Slot(instant.astimezone(self.zone))

    def _instants(self, wall_start: datetime, *, forward: bool) -> Iterator[datetime]:
        """Slots as UTC instants, walking the wall clock from ``wall_start``.

        croniter is given naive wall-clock times on purpose: with aware ones it fires twice
        in the repeated hour of autumn, and we want wall-clock semantics decided here.
        """
        walker = croniter(self.expression, wall_start)
        step = walker.get_next if forward else walker.get_prev
        while True:
            try:
                wall = step(datetime)
            except CroniterBadDateError:
                return
            yield _place(wall, self.zone)


def is_due(slot: Slot, now: datetime, catch_up: CatchUp) -> bool:
    """Whether a run at ``now`` should still serve ``slot``.

    'latest' runs a missed slot late, however late; 'skip' drops it once ``SKIP_GRACE``
    has passed, for newsletters where a late issue is worse than none.
    """
    now = _utc(now)
    if slot.instant > now:
        return False
    return catch_up == "latest" or now < slot.instant + SKIP_GRACE


def parse_schedule(settings: ScheduleSettings, default_zone: str) -> Schedule:
    """Check ``schedule:`` from newsletter.yml; ``default_zone`` is newsletter.timezone."""
    expression = (settings.cron or "").strip()
    if not expression:
        raise ScheduleError(
            f"no schedule.cron set; add e.g. cron: '{EXAMPLE_CRON}' "
            "(minute hour day-of-month month day-of-week: Tuesdays at 08:00)"
        )
    _check_cron(expression)
    zone_name = settings.timezone or default_zone
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        field = "schedule.timezone" if settings.timezone else "newsletter.timezone"
        raise ScheduleError(
            f"{field}: unknown time zone {zone_name!r}; use an IANA name such as "
            "'Europe/London' or 'UTC'"
        ) from None
    return Schedule(
        expression=expression,
        zone=zone,
        catch_up=settings.catch_up,
        lists=tuple(settings.lists),
    )


def _check_cron(expression: str) -> None:
    problem = cron_problem(expression)
    if problem is not None:
        raise ScheduleError(f"schedule.cron: {problem}")


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron expression this tool can run, or None when it is."""

    def invalid(reason: str) -> str:
        return (
            f"{expression!r} is not a valid cron expression: {reason}; "
            f"expected five fields 'minute hour day-of-month month day-of-week', "
            f"e.g. '{EXAMPLE_CRON}' for Tuesdays at 08:00"
        )

    if not expression.startswith("@") and len(expression.split()) != 5:
        return invalid(f"it has {len(expression.split())} fields, not 5")
    try:
        croniter(expression, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return invalid("it never matches a real date")
    except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
        return invalid(str(exc) or type(exc).__name__)
    return None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"the clock must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    # Through UTC: astimezone() to an instant's own tzinfo returns it unchanged, even when
    # it names a wall time that does not exist.
    return instant.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock slot is due: first occurrence if repeated, gap end if skipped."""
    first = wall.replace(tzinfo=zone, fold=0)
    if _wall(first, zone) == wall:
        return first.astimezone(UTC)
    # Skipped by a forward jump. Read with the offset from after the jump it lands before the
    # gap, with the offset from before it lands after: the jump itself lies in between.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    offset_after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def schedule_of(loaded: LoadedConfig) -> Schedule:
    """The schedule newsletter.yml sets, in the newsletter's time zone."""
    return parse_schedule(loaded.settings.schedule, loaded.settings.newsletter.timezone)
