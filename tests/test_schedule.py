from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import ScheduleSettings, parse_config
from newsletter.errors import ScheduleError
from newsletter.schedule import SKIP_GRACE, Schedule, Slot, is_due, parse_schedule

LONDON = ZoneInfo("Europe/London")


def schedule(cron: str, zone: str = "Europe/London", **extra: object) -> Schedule:
    return parse_schedule(ScheduleSettings(cron=cron, **extra), default_zone=zone)


def unchecked(cron: str) -> Schedule:
    """``parse_schedule``'s own check: ScheduleSettings refuses a bad cron on load, so a bad
    one can only come from settings built in code."""
    settings = ScheduleSettings.model_construct(cron=cron, lists=[], catch_up="latest")
    return parse_schedule(settings, default_zone="Europe/London")


def local(*parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=LONDON, fold=fold)  # type: ignore[misc]


def shown(slots: list[Slot]) -> list[str]:
    return [str(slot) for slot in slots]


# --- parsing --------------------------------------------------------------------------------


def test_invalid_cron_names_the_field_the_expression_the_reason_and_an_example() -> None:
    with pytest.raises(ScheduleError) as caught:
        unchecked("61 8 * * 2")
    message = str(caught.value)
    assert message.startswith("schedule.cron: '61 8 * * 2' is not a valid cron expression: ")
    assert "out of range" in message
    assert "e.g. '0 8 * * 2'" in message
    assert caught.value.exit_code == 2


def test_cron_with_the_wrong_number_of_fields_says_how_many() -> None:
    with pytest.raises(ScheduleError, match=r"'0 8 \* \*' .*it has 4 fields, not 5"):
        unchecked("0 8 * *")
    with pytest.raises(ScheduleError, match="it has 6 fields, not 5"):
        unchecked("0 0 8 * * 2")


def test_cron_that_never_matches_is_refused() -> None:
    with pytest.raises(ScheduleError, match="never matches a real date"):
        unchecked("0 0 30 2 *")


def test_missing_cron_says_what_to_add() -> None:
    with pytest.raises(
        ScheduleError, match=r"^no schedule\.cron set; add e\.g\. cron: '0 8 \* \* 2'"
    ):
        parse_schedule(ScheduleSettings(), default_zone="UTC")


def test_unknown_zone_names_the_field() -> None:
    # ScheduleSettings validates its zone on load, so an unknown one can only come from a
    # settings object built in code; the fallback zone is the common way in.
    with pytest.raises(
        ScheduleError, match=r"^newsletter\.timezone: unknown time zone 'Mars/Base'"
    ):
        parse_schedule(ScheduleSettings(cron="0 8 * * 2"), default_zone="Mars/Base")
    settings = ScheduleSettings.model_construct(cron="0 8 * * 2", timezone="Europe/Lundon")
    with pytest.raises(
        ScheduleError, match=r"^schedule\.timezone: unknown time zone 'Europe/Lundon'"
    ):
        parse_schedule(settings, default_zone="UTC")


def test_zone_falls_back_to_the_newsletter_zone_and_keeps_the_settings() -> None:
    parsed = parse_schedule(
        ScheduleSettings(cron="0 8 * * 2", lists=["weekly"], catch_up="skip"),
        default_zone="America/New_York",
    )
    assert parsed.zone == ZoneInfo("America/New_York")
    assert parsed.lists == ("weekly",)
    assert parsed.catch_up == "skip"
    assert schedule("0 8 * * 2", timezone="Asia/Tokyo").zone == ZoneInfo("Asia/Tokyo")


def test_schedule_from_a_real_config_file() -> None:
    text = """
newsletter:
  name: Notes
  site_url: https://example.org
  timezone: Europe/London
  sender: {name: Notes, address: notes@example.org}
  postal_address: 1 High Street
sources: [{type: markdown, name: blog, path: posts}]
schedule: {cron: '0 8 * * tue'}
"""
    config = parse_config(text)
    parsed = parse_schedule(config.schedule, config.newsletter.timezone)
    assert str(parsed.latest_due(local(2026, 11, 26, 12))) == "2026-11-24T08:00+00:00"


# --- what is due ----------------------------------------------------------------------------


def test_latest_due_with_a_frozen_clock() -> None:
    weekly = schedule("0 8 * * 2")
    slot = weekly.latest_due(local(2026, 11, 24, 9, 15))
    assert slot == Slot(local(2026, 11, 24, 8, 0))
    assert slot is not None and slot.date() == date(2026, 11, 24)
    assert slot.due.tzinfo == LONDON
    # Exactly at the slot it is due; a minute before, last week's is the latest.
    assert weekly.latest_due(local(2026, 11, 24, 8, 0)) == slot
    assert str(weekly.latest_due(local(2026, 11, 24, 7, 59))) == "2026-11-17T08:00+00:00"


def test_latest_due_accepts_any_zone_for_now() -> None:
    weekly = schedule("0 8 * * 2")
    tokyo = datetime(2026, 11, 24, 17, 30, tzinfo=ZoneInfo("Asia/Tokyo"))  # 08:30 in London
    assert str(weekly.latest_due(tokyo)) == "2026-11-24T08:00+00:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        weekly.latest_due(datetime(2026, 11, 24, 9))


def test_the_issue_date_is_the_local_date_of_the_slot() -> None:
    late_evening = schedule("30 23 * * *", zone="America/Los_Angeles")
    slot = late_evening.latest_due(datetime(2026, 7, 2, 12, tzinfo=UTC))
    assert str(slot) == "2026-07-01T23:30-07:00"
    assert slot is not None and slot.date() == date(2026, 7, 1)


def test_missed_weeks_collapse_into_the_latest_slot() -> None:
    weekly = schedule("0 8 * * 2")
    # Down from before 2026-11-03 until Thursday 2026-11-19: three slots were missed.
    now = local(2026, 11, 19, 10, 0)
    slot = weekly.latest_due(now)
    assert str(slot) == "2026-11-17T08:00+00:00"
    assert slot is not None and is_due(slot, now, "latest")
    assert weekly.due_now(now) == slot


def test_next_due_lists_slots_strictly_after_now() -> None:
    weekly = schedule("0 8 * * 2")
    assert shown(weekly.next_due(local(2026, 11, 24, 8, 0), count=3)) == [
        "2026-12-01T08:00+00:00",
        "2026-12-08T08:00+00:00",
        "2026-12-15T08:00+00:00",
    ]
    assert len(weekly.next_due(local(2026, 11, 24, 8, 0))) == 5


def test_previous_slot() -> None:
    weekly = schedule("0 8 * * 2")
    slot = Slot(local(2026, 11, 24, 8, 0))
    previous = weekly.previous_slot(slot)
    assert str(previous) == "2026-11-17T08:00+00:00"
    assert previous is not None and previous < slot


def test_slots_compare_as_instants_not_wall_times() -> None:
    first_0130 = Slot(local(2026, 10, 25, 1, 30, fold=0))  # BST
    second_0130 = Slot(local(2026, 10, 25, 1, 30, fold=1))  # GMT, an hour later
    assert first_0130 != second_0130
    assert first_0130 < second_0130
    assert Slot(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == first_0130
    assert len({first_0130, second_0130, Slot(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))}) == 2


# --- daylight saving time in Europe/London --------------------------------------------------


def test_spring_forward_daily_0130_runs_once_at_0200_when_the_clock_jumps() -> None:
    daily = schedule("30 1 * * *")
    assert shown(daily.next_due(local(2026, 3, 27, 12, 0), count=4)) == [
        "2026-03-28T01:30+00:00",
        "2026-03-29T02:00+01:00",  # 01:30 does not exist that night
        "2026-03-30T01:30+01:00",
        "2026-03-31T01:30+01:00",
    ]
    assert str(daily.latest_due(local(2026, 3, 29, 2, 10))) == "2026-03-29T02:00+01:00"
    just_before_the_jump = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)  # 00:59 GMT
    assert str(daily.latest_due(just_before_the_jump)) == "2026-03-28T01:30+00:00"
    slot = daily.latest_due(local(2026, 3, 29, 12, 0))
    assert slot is not None and slot.date() == date(2026, 3, 29)
    assert str(daily.previous_slot(slot)) == "2026-03-28T01:30+00:00"


def test_spring_forward_slots_inside_the_gap_collapse_into_one() -> None:
    quarterly = schedule("*/15 * * * *")
    assert shown(quarterly.next_due(local(2026, 3, 29, 0, 40), count=3)) == [
        "2026-03-29T00:45+00:00",
        "2026-03-29T02:00+01:00",
        "2026-03-29T02:15+01:00",
    ]


def test_fall_back_daily_0130_runs_once_not_twice() -> None:
    daily = schedule("30 1 * * *")
    assert shown(daily.next_due(local(2026, 10, 24, 12, 0), count=3)) == [
        "2026-10-25T01:30+01:00",
        "2026-10-26T01:30+00:00",
        "2026-10-27T01:30+00:00",
    ]
    # During the repeated hour the latest slot is still the first 01:30, already served.
    second_pass = local(2026, 10, 25, 1, 45, fold=1)
    assert second_pass.utcoffset() == timedelta(0)
    assert str(daily.latest_due(second_pass)) == "2026-10-25T01:30+01:00"
    # A clock reading from the repeated hour that is later than the slot, though its wall
    # time (01:15) is earlier.
    assert str(daily.latest_due(local(2026, 10, 25, 1, 15, fold=1))) == "2026-10-25T01:30+01:00"
    after = daily.next_due(local(2026, 10, 25, 1, 30, fold=0), count=1)
    assert shown(after) == ["2026-10-26T01:30+00:00"]
    assert str(daily.previous_slot(after[0])) == "2026-10-25T01:30+01:00"


@pytest.mark.parametrize(
    ("start", "expected_offsets", "longest_or_shortest_week"),
    [
        (local(2026, 3, 10, 12, 0), ["+00:00", "+00:00", "+01:00", "+01:00"], timedelta(hours=-1)),
        (local(2026, 10, 10, 12, 0), ["+01:00", "+01:00", "+00:00", "+00:00"], timedelta(hours=1)),
    ],
    ids=["spring", "autumn"],
)
def test_weekly_tuesday_0800_stays_at_0800_local_across_a_change(
    start: datetime, expected_offsets: list[str], longest_or_shortest_week: timedelta
) -> None:
    slots = schedule("0 8 * * 2").next_due(start, count=4)
    assert [slot.due.strftime("%a %H:%M") for slot in slots] == ["Tue 08:00"] * 4
    assert [slot.due.isoformat()[-6:] for slot in slots] == expected_offsets
    weeks = [later.instant - earlier.instant for earlier, later in itertools.pairwise(slots)]
    week = timedelta(days=7)
    assert weeks == [week, week + longest_or_shortest_week, week]


# --- catch-up -------------------------------------------------------------------------------


def test_catch_up_latest_runs_a_missed_slot_however_late() -> None:
    slot = Slot(local(2026, 11, 24, 8, 0))
    assert is_due(slot, local(2026, 11, 24, 8, 0), "latest")
    assert is_due(slot, local(2026, 11, 27, 8, 0), "latest")
    assert not is_due(slot, local(2026, 11, 24, 7, 59), "latest")


def test_catch_up_skip_drops_a_slot_after_the_grace_window() -> None:
    assert timedelta(hours=1) == SKIP_GRACE
    slot = Slot(local(2026, 11, 24, 8, 0))
    assert is_due(slot, local(2026, 11, 24, 8, 59), "skip")
    assert not is_due(slot, local(2026, 11, 24, 9, 0), "skip")
    assert not is_due(slot, local(2026, 11, 24, 7, 59), "skip")

    skipping = schedule("0 8 * * 2", catch_up="skip")
    assert skipping.due_now(local(2026, 11, 24, 8, 20)) == slot
    assert skipping.due_now(local(2026, 11, 24, 10, 0)) is None
    assert schedule("0 8 * * 2").due_now(local(2026, 11, 24, 10, 0)) == slot
