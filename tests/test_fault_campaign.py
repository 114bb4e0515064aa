"""The fault campaign of bench/fault_campaign.py in small: a send killed and faulted, then audited.

Each transport's send is SIGKILLed a few times at random moments against a sink that drops,
hangs, rate-limits and refuses, then run to the end; the ledger must then equal what the
sink took: nobody lost, nobody sent twice, the refused address refused and never taken.
Run alone with ``pytest -m faults``; the full campaign is ``bench/fault_campaign.py``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import postgres_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from fault_campaign import Plan, Result, run_campaign, table

PLANS = [
    Plan(
        "sendgrid",
        2_000,
        "429=0.03,500=0.03,drop-before=0.03,drop-after=0.03,hang-before=0.03,hang-after=0.03,"
        "hang=1",
        {"batch_size": 100, "timeout": 0.5},
        refuse_at=0.95,
        kills=4,
        kill_window=(0.3, 3.0),
        final_runs=4,
        run_timeout=60,
    ),
    Plan(
        "smtp",
        200,
        "451-rcpt=0.02,451-data=0.02,drop-before=0.02,drop-after=0.02,hang-after=0.02,hang=1",
        {"connections": 2, "timeout": 0.5},
        refuse_at=0.95,
        kills=3,
        kill_window=(0.3, 2.5),
        final_runs=4,
        run_timeout=60,
    ),
]


SHARED_PLAN = replace(PLANS[0], senders=2, kills=3, kill_window=(0.2, 1.0))
"""On PostgreSQL, two senders share the send in each round (--join); one of them is killed
while the other runs on. In the last round, or once half the send is settled, the first
is killed soon after recipients are sent again and the other runs to its end."""


@pytest.mark.faults
@pytest.mark.timeout(110)
@pytest.mark.parametrize("plan", PLANS, ids=[plan.transport for plan in PLANS])
def test_a_killed_and_faulted_send_neither_loses_nor_duplicates(plan: Plan, tmp_path: Path) -> None:
    assert_holds(run_campaign(plan, tmp_path, say=lambda line: None))


@pytest.mark.faults
@pytest.mark.timeout(150)
def test_two_senders_on_postgresql_one_killed_neither_lose_nor_duplicate(
    postgres_cluster: Any, tmp_path: Path
) -> None:
    postgres_url(postgres_cluster)  # skips, or fails where a server is required, without one
    result = run_campaign(
        SHARED_PLAN, tmp_path, say=lambda line: None, store=postgres_cluster.base_url()
    )
    pairs = zip(result.rounds[::2], result.rounds[1::2], strict=True)
    assert any(first.killed and other.seconds > first.seconds for first, other in pairs), (
        "no sender was killed while the other still ran\n" + table(result)
    )
    assert_holds(result)


def assert_holds(result: Result) -> None:
    plan, found = result.plan, result.audit
    refused = plan.refused_address
    assert refused is not None
    refused_state = result.states.get(refused)
    assert {
        "lost": found.lost,
        "duplicated": found.duplicated,
        "ledger equals sink": found.ledger_equals_sink,
        "complete": result.complete,
        # Unconfirmed only if no run that ended by itself heard it refused (the next line), or
        # if a kill caught its batch before its turn, so that the sink never saw it at all.
        "refused address": refused_state in ("refused", "unconfirmed"),
        "refusals heard, not recorded": found.refusals_unrecorded,
        "refused, yet taken": found.refusals_taken,
    } == {
        "lost": [],
        "duplicated": [],
        "ledger equals sink": True,
        "complete": True,
        "refused address": True,
        "refusals heard, not recorded": [],
        "refused, yet taken": [],
    }, table(result)
