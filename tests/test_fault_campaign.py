"""The fault campaign of bench/fault_campaign.py in small: a send killed and faulted, then audited.

Each transport's send is SIGKILLed a few times at random moments against a sink that drops,
hangs, rate-limits and refuses, then run to the end; the ledger must then equal what the
sink took: nobody lost, nobody sent twice, the refused address refused and never taken.
Run alone with ``pytest -m faults``; the full campaign is ``bench/fault_campaign.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from fault_campaign import Plan, ledger_states, run_campaign, table

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


@pytest.mark.faults
@pytest.mark.timeout(110)
@pytest.mark.parametrize("plan", PLANS, ids=[plan.transport for plan in PLANS])
def test_a_killed_and_faulted_send_neither_loses_nor_duplicates(plan: Plan, tmp_path: Path) -> None:
    result = run_campaign(plan, tmp_path, say=lambda line: None)
    found = result.audit
    refused = plan.refused_address
    assert refused is not None
    refused_state = ledger_states(tmp_path / plan.transport / "newsletter.yml").get(refused)
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
