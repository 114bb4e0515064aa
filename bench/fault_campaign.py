"""Fault campaign: kill a send at random moments, run it again, audit the ledger against the sink.

For each transport a project and a store are made as bench_send.py makes them (issue 1
built, the list 'members'), with a fault sink of fault_sinks.py as the provider, short
timeouts so hangs end quickly, and the sender's retry settings where the config takes them.
The send runs as ``python -m newsletter send 1 --list members`` in a child process:

1. calibration: with a scratch sink, one send runs to its end and one more runs with
   (nearly) nothing left to do; how long each took sets when the kills fall; the store is
   then put back as it was before any send (skipped when --kill-window is given);
2. ``--kills`` rounds: each starts the send and SIGKILLs it after a random delay: a share
   (``--early``) during start-up, the others spread so that the rounds together cover the
   whole send, batches and retry waits alike;
3. the send runs without kills until its exit status says it is complete (0, or 11: complete
   with unconfirmed recipients), again while it says to run again (7) or that another send
   holds the lock (8), at most 15 times;
4. the audit, per address: the sink's record (what it took, flushed before it answered)
   against the ledger.

On a PostgreSQL store (``--store URL``, or ``--postgres`` for a throw-away cluster) each
campaign's store is a schema of its own, and the SendGrid campaign's rounds run two
senders on the send (``send --join``): one is killed at the round's moment, the other a
little later, except in the round after half the send is settled (or the last), where the
other runs to its end and takes over what the killed one left (its claimed batches sent,
the one being posted unconfirmed).

    .venv/bin/python bench/fault_campaign.py [--quick] [--seed N] [--only sendgrid|smtp]
        [--store postgresql://USER:PASSWORD@HOST/DB | --postgres]

Prints a table per transport and writes it with the raw figures as JSON to bench/results/.
The send holds up if nothing is lost (the ledger says sent, the sink never took it), nothing
is duplicated (the sink took it twice) and the ledger equals the sink: every address the
ledger calls sent was taken exactly once, every address taken is sent or unconfirmed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

import bench_send
from bench_send import (
    ENV,
    PYTHON,
    STORES,
    Sink,
    make_project,
    make_store,
    reset_store,
    sendgrid_provider,
    smtp_provider,
    write_results,
)
from fault_sinks import SENDGRID_FAULTS, SMTP_FAULTS, FaultSpec

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ISSUE_ID = "001-2026-11-24"
"""Issue 1 as make_project builds it (on 2026-11-24)."""

COMPLETE = {0: "complete", 11: "complete, some recipients unconfirmed"}
RUN_AGAIN = {7: "stopped, or left recipients to retry", 8: "another send holds the lock"}

UNSETTLED = ("queued", "retry", "sending")
"""Ledger states that a complete send leaves nobody in."""

RETRY_SETTINGS = {"max_attempts": 8, "retry_base": 0.2, "retry_cap": 2.0}
"""The sender's back-off, written as ``sending:`` into newsletter.yml where it is taken."""


class FaultSink(Sink):
    """``python bench/fault_sinks.py KIND --record FILE ...`` in its own process."""

    script = "fault_sinks.py"

    def __init__(self, kind: str, record: Path, faults: str, seed: int) -> None:
        super().__init__(kind, "--record", str(record), "--faults", faults, "--seed", str(seed))


# --- the plan of a campaign ----------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    transport: str
    """sendgrid or smtp."""
    recipients: int
    faults: str
    """A fault spec, as fault_sinks.py reads it."""
    provider: dict[str, Any] = field(default_factory=dict)
    """Settings under provider.<transport> besides the sink's address."""
    refuse_at: float | None = 0.9
    """The sink refuses the subscriber this far down the list (reader90000 of 100,000)."""
    kills: int = 20
    early: float = 0.2
    """Share of the kills that fall during start-up, before the first batch."""
    kill_window: tuple[float, float] | None = None
    """Kill after a delay drawn from this range of seconds instead of the calibrated one."""
    final_runs: int = 15
    run_timeout: float = 600.0
    """A run of the send taking longer than this is killed and counted as hung."""
    seed: int = 1
    senders: int = 1
    """Senders sharing the send in each round (``send --join``; 2 needs a PostgreSQL
    store): the first is killed at the round's moment, the others a little later, except
    in the round after half the send is settled (or the last), where they run to their end
    and take over the killed one's work."""

    @property
    def refused_address(self) -> str | None:
        if self.refuse_at is None:
            return None
        return f"reader{max(1, round(self.recipients * self.refuse_at))}@example.org"

    @property
    def sink_faults(self) -> str:
        refuse = self.refused_address
        return ",".join(filter(None, [self.faults, refuse and f"refuse={refuse}"]))

    def check(self) -> None:
        """Raise ValueError if the sink would not take the fault spec."""
        FaultSpec.parse(
            self.sink_faults, SENDGRID_FAULTS if self.transport == "sendgrid" else SMTP_FAULTS
        )


FULL_PLANS = (
    Plan(
        "sendgrid",
        100_000,
        "429=0.04,500=0.04,drop-before=0.03,drop-after=0.03,hang-before=0.02,hang-after=0.02,"
        "hang=2",
        {"timeout": 1.0},
    ),
    Plan(
        "smtp",
        5_000,
        "451-rcpt=0.004,451-data=0.004,drop-before=0.004,drop-after=0.004,hang-after=0.002,hang=2",
        {"connections": 4, "timeout": 1.0},
    ),
)
QUICK_PLANS = (
    replace(
        FULL_PLANS[0], recipients=20_000, provider={"batch_size": 500, "timeout": 1.0}, kills=8
    ),
    replace(FULL_PLANS[1], recipients=1_000, kills=8),
)
SHARED = {"sendgrid": 2}
"""Senders per round on a store that shares sends (PostgreSQL), by transport."""


# --- running the send ------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the send: how it ended."""

    seconds: float
    status: int | None
    """Its exit status; None when it was killed."""
    killed: bool = False
    delay: float | None = None
    """When it was to be killed, in seconds after its start."""
    leftovers: bool = False
    """Processes it started outlived it (and were then killed)."""
    started_at: float = 0.0
    ended_at: float = 0.0
    """Unix times, to set beside the sink's."""
    sender: int = 1
    """Which of a round's senders this was."""

    @property
    def meaning(self) -> str:
        if self.killed:
            return "killed"
        if self.status is None:
            return "hung"
        return COMPLETE.get(self.status) or RUN_AGAIN.get(self.status) or "error"


def run_send(config_path: Path, log_path: Path, kill_after: float | None, timeout: float) -> Run:
    """``newsletter send`` in a child process, SIGKILLed after ``kill_after`` seconds if set."""
    return run_senders(config_path, log_path, [kill_after], timeout)[0]


def run_senders(
    config_path: Path,
    log_path: Path,
    kill_afters: list[float | None],
    timeout: float,
    armed: Callable[[], bool] | None = None,
) -> list[Run]:
    """One ``newsletter send`` per entry of ``kill_afters``, started together; each is
    SIGKILLed after its number of seconds if set, counted from when ``armed`` first says
    so (checked a few times a second), else from the start. Several share the send
    (``--join``)."""
    shared = len(kill_afters) > 1
    # Senders sharing a send log each step, so the log shows when one took over another's.
    command = [PYTHON, "-m", "newsletter", *(["-v"] * shared), "send", "1", "--list", "members"]
    command += ["--join"] * shared
    with log_path.open("ab") as log:
        log.write(f"\n--- {len(kill_afters)} send(s), killed after {kill_afters} s\n".encode())
        log.flush()
        started, started_at = time.monotonic(), time.time()
        children = [
            subprocess.Popen(
                [*command, "--config", str(config_path)],
                env={**os.environ, **ENV},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so what it forks can be found
            )
            for _ in kill_afters
        ]
        ended, leftovers = _wait_all(children, kill_afters, timeout, started, armed)
        runs = []
        for sender, (child, kill_after, seconds) in enumerate(
            zip(children, kill_afters, ended, strict=True), start=1
        ):
            status = None if child.returncode == -signal.SIGKILL else child.returncode
            killed = status is None and kill_after is not None
            run = Run(
                seconds, status, killed, kill_after, started_at=started_at,
                ended_at=started_at + seconds, sender=sender,
            )  # fmt: skip
            run.leftovers = leftovers[sender - 1]
            log.write(f"--- sender {sender}: {run.meaning} ({status}), {seconds:.2f} s\n".encode())
            runs.append(run)
    return runs


def _wait_all(
    children: list[subprocess.Popen[bytes]],
    kill_afters: list[float | None],
    timeout: float,
    started: float,
    armed: Callable[[], bool] | None,
) -> tuple[list[float], list[bool]]:
    """Seconds from ``started`` to each child's end, and whether processes it started
    outlived it (``_end_group``, checked as it ends: a killed sender's workers must not
    go on beside the others); each is SIGKILLed at its ``kill_after`` after the kills
    were armed, or at ``timeout`` (hung)."""
    ends: list[float | None] = [None] * len(children)
    leftovers = [False] * len(children)
    armed_at = 0.0 if armed is None else None
    checked = 0.0
    while None in ends:
        now = time.monotonic() - started
        if armed_at is None and now - checked >= 0.25:
            checked = now
            armed_at = now if armed is not None and armed() else None
        for number, (child, kill_after) in enumerate(zip(children, kill_afters, strict=True)):
            if ends[number] is not None:
                continue
            due = timeout if kill_after is None or armed_at is None else armed_at + kill_after
            if child.poll() is None and now >= due:
                child.send_signal(signal.SIGKILL)  # not sent if it has just ended by itself
                child.wait()
            if child.returncode is not None:
                ends[number] = now
                leftovers[number] = _end_group(child.pid)
        time.sleep(0.01)
    return [end for end in ends if end is not None], leftovers


def _end_group(pgid: int, grace_s: float = 2.0) -> bool:
    """True if processes of the sender's group outlived it by ``grace_s``; they are killed."""
    deadline = time.monotonic() + grace_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            return True
        time.sleep(0.05)
    return False


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies left unreaped do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name in parentheses: state, parent, process group, ...
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# --- the project ------------------------------------------------------------------------------


def provider_for(plan: Plan, port: int) -> dict[str, Any]:
    provider = sendgrid_provider(port) if plan.transport == "sendgrid" else smtp_provider(port)
    provider[plan.transport].update(plan.provider)
    return provider


def write_config(config_path: Path, **sections: Any) -> None:
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.update(sections)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def add_retry_settings(config_path: Path) -> str | None:
    """``sending:`` with the campaign's back-off, if this version's config takes it; else a
    note saying why the engine's own back-off applies."""
    from newsletter.config import load_config
    from newsletter.errors import ConfigError

    before = config_path.read_text(encoding="utf-8")
    write_config(config_path, sending=RETRY_SETTINGS)
    try:
        load_config(config_path)
    except ConfigError as exc:
        config_path.write_text(before, encoding="utf-8")
        refusal = str(exc).strip().splitlines()[-1].split(": ", 1)[-1]
        return f"newsletter.yml does not take 'sending:' ({refusal}); the engine's back-off applies"
    return None


def ledger_states(config_path: Path) -> dict[str, str]:
    """Each recipient's address (lower case) and ledger state."""
    from newsletter.config import load_config
    from newsletter.store import Ledger, open_store

    with bench_send.environment(), open_store(load_config(config_path)) as store:
        entries = Ledger(store).entries(ISSUE_ID)
    return {entry.email.lower(): str(entry.state) for entry in entries}


def _delivering(config_path: Path, sent: int) -> Callable[[], bool]:
    """Whether more than ``sent`` recipients are sent now: the senders are delivering (a
    run's start settles what an earlier one left unconfirmed, which says nothing yet)."""
    from newsletter.config import load_config
    from newsletter.store import Ledger, open_store

    with bench_send.environment():
        loaded = load_config(config_path)

    def more() -> bool:
        with bench_send.environment(), open_store(loaded) as store:
            counts = Ledger(store).counts(ISSUE_ID)
        return counts["sent"] > sent

    return more


def read_record(path: Path) -> Counter[str]:
    """How many times the sink took each address."""
    with path.open(encoding="utf-8") as record:
        return Counter(line.strip().lower() for line in record if line.strip())


# --- the audit ------------------------------------------------------------------------------


@dataclass
class Audit:
    recipients: int
    states: dict[str, int]
    """Recipients per ledger state."""
    lost: list[str]
    """The ledger says sent; the sink never took them."""
    duplicated: list[str]
    """The sink took them more than once."""
    extra_copies: int
    unconfirmed_seen: int
    unconfirmed_unseen: int
    refused: list[str]
    refused_seen: list[str]
    """Refused in the ledger, yet taken by the sink."""
    still_queued: int
    """Queued, waiting to be retried or being sent when the campaign ended."""
    sent_twice: list[str]
    """The ledger says sent; the sink took them more than once."""
    seen_unaccounted: list[str]
    """Taken by the sink, but neither sent nor unconfirmed in the ledger."""
    refusals: dict[str, str | None]
    """Each address the sink refused, with its state in the ledger."""
    refusals_taken: list[str]
    """Refused by the sink once, taken by it another time."""
    refusals_unrecorded: list[str]
    """Refused by the sink in a run that went on to end by itself, yet not refused in the
    ledger. (A run killed after a refusal may leave the address unconfirmed.)"""

    @property
    def ledger_equals_sink(self) -> bool:
        return not (self.lost or self.sent_twice or self.seen_unaccounted)

    def figures(self, examples: int = 20) -> dict[str, Any]:
        """The audit as JSON: counts, and a few addresses of each kind of mismatch."""
        figures: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if isinstance(value, list):
                figures[name] = len(value)
                if value:
                    figures[f"{name}_examples"] = sorted(value)[:examples]
            else:
                figures[name] = value
        figures["ledger_equals_sink"] = self.ledger_equals_sink
        return figures


def audit(
    states: dict[str, str], seen: Counter[str], refusals: dict[str, bool] | None = None
) -> Audit:
    """Compare, address by address, the ledger's states with what the sink took, and with
    what it refused: ``refusals`` says of each address refused whether a run that ended by
    itself heard the refusal."""
    refusals = refusals or {}
    by_state = Counter(states.values())
    sent = [address for address, state in states.items() if state == "sent"]
    unconfirmed = [address for address, state in states.items() if state == "unconfirmed"]
    refused = [address for address, state in states.items() if state == "refused"]
    return Audit(
        recipients=len(states),
        states=dict(sorted(by_state.items())),
        lost=[address for address in sent if not seen[address]],
        duplicated=[address for address, times in seen.items() if times > 1],
        extra_copies=sum(times - 1 for times in seen.values() if times > 1),
        unconfirmed_seen=sum(1 for address in unconfirmed if seen[address]),
        unconfirmed_unseen=sum(1 for address in unconfirmed if not seen[address]),
        refused=refused,
        refused_seen=[address for address in refused if seen[address]],
        still_queued=sum(by_state[state] for state in UNSETTLED),
        sent_twice=[address for address in sent if seen[address] > 1],
        seen_unaccounted=[
            address for address in seen if states.get(address) not in ("sent", "unconfirmed")
        ],
        refusals={address: states.get(address) for address in refusals},
        refusals_taken=[address for address in refusals if seen[address]],
        refusals_unrecorded=[
            address
            for address, heard in refusals.items()
            if heard and states.get(address) != "refused"
        ],
    )


# --- one campaign -----------------------------------------------------------------------------


@dataclass
class Timing:
    """What the calibration found: when the kills should fall."""

    startup_s: float
    """A run with (nearly) nothing left to send: start-up, lock, queue, and exit."""
    work_s: float
    """How much longer a whole send took."""


@dataclass
class Result:
    plan: Plan
    timing: Timing | None
    rounds: list[Run]
    final: list[Run]
    complete: bool
    sink: dict[str, Any]
    audit: Audit
    notes: list[str]
    seconds: float
    states: dict[str, str] = field(default_factory=dict)
    takeovers: list[tuple[int, int]] = field(default_factory=list)
    """Each time a sender took over a killed one's batches: recipients queued again, and
    left unconfirmed."""
    """Each recipient's address and ledger state at the end (not in the figures)."""

    @property
    def kills(self) -> int:
        return sum(run.killed for run in self.rounds)

    def figures(self) -> dict[str, Any]:
        return {
            "plan": asdict(self.plan),
            "timing": None if self.timing is None else asdict(self.timing),
            "kills": self.kills,
            "rounds": [asdict(run) for run in self.rounds],
            "final_runs": [asdict(run) for run in self.final],
            "complete": self.complete,
            "sink": self.sink,
            "audit": self.audit.figures(),
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "takeovers": self.takeovers,
        }


def run_campaign(
    plan: Plan, work: Path, say: Callable[[str], None] = print, *, store: str | None = None
) -> Result:
    """Make the project, calibrate, kill the send ``plan.kills`` times, finish it, audit it.

    ``store`` is a PostgreSQL database to keep the campaign's store in (a schema of its
    own, dropped at the end); the SQLite file of the project otherwise."""
    plan.check()
    if plan.senders > 1 and store is None:
        raise ValueError("senders sharing a send need a PostgreSQL store")
    bench_send.OPTIONS["store"] = store
    try:
        return _campaign(plan, work, say)
    finally:
        bench_send.OPTIONS["store"] = None
        for schema in STORES.values():
            schema.drop()
        STORES.clear()


def _campaign(plan: Plan, work: Path, say: Callable[[str], None]) -> Result:
    started = time.monotonic()
    root = work / plan.transport
    config_path = make_project(root, {"type": "outbox"})
    make_store(config_path, plan.recipients)
    notes = [note for note in [add_retry_settings(config_path)] if note]
    log = root / "send.log"
    rng = random.Random(f"{plan.seed}:{plan.transport}:kills")

    timing = None
    if plan.kill_window is None:
        timing = _calibrate(plan, config_path, root, log)
        say(
            f"  calibration: start-up {timing.startup_s:.1f} s, "
            f"a whole send {timing.startup_s + timing.work_s:.1f} s"
        )
        reset_store(config_path)

    record = root / "record.txt"
    sink = FaultSink(plan.transport, record, plan.sink_faults, plan.seed)
    try:
        write_config(config_path, provider=provider_for(plan, sink.port))
        rounds = []
        counts: Counter[str] = Counter()
        took_over = plan.senders == 1
        for number in range(1, plan.kills + 1):
            delay = _kill_delay(plan, timing, rng)
            later: float | None = delay + _share(plan, timing, rng)
            settled = sum(counts[state] for state in ("sent", "refused", "unconfirmed"))
            armed = None
            if not took_over and (number == plan.kills or settled >= plan.recipients / 2):
                # Once half the send is settled (or in the last round), the other senders
                # run to their end: they take over the killed one's batches, as senders
                # sharing a send do when one of them dies, while there is work left. The
                # first is killed a while after batches go out again: while it holds some.
                later, took_over = None, True
                delay, armed = _share(plan, timing, rng), _delivering(config_path, counts["sent"])
            runs = run_senders(
                config_path,
                log,
                [delay, *[later] * (plan.senders - 1)],
                plan.run_timeout,
                armed,
            )
            rounds.extend(runs)
            counts = Counter(ledger_states(config_path).values())
            say(
                f"  round {number:>2}: {_ends(runs)}; ledger "
                + ", ".join(f"{state} {count:,}" for state, count in sorted(counts.items()))
            )
        final = _finish(plan, config_path, log, say)
    finally:
        sink_figures = sink.stop()
    complete = bool(final) and final[-1].status in COMPLETE
    if not complete:
        notes.append(
            f"the send did not complete in {len(final)} runs without kills "
            f"(last: {final[-1].meaning if final else 'none'}); see {log}"
        )
    if any(run.leftovers for run in [*rounds, *final]):
        notes.append("processes of a killed send outlived it by 2 s and were killed")
    states = ledger_states(config_path)
    found = audit(
        states,
        read_record(record),
        _heard(sink_figures.get("refusals", {}), [*rounds, *final]),
    )
    return Result(
        plan,
        timing,
        rounds,
        final,
        complete,
        sink_figures,
        found,
        notes,
        time.monotonic() - started,
        states,
        takeovers(log),
    )


TAKEOVER = re.compile(
    r"took over a stopped sender's batches: (\d+) queued again, (\d+) left unconfirmed"
)


def takeovers(log: Path) -> list[tuple[int, int]]:
    """What the senders' logs say they took over from killed ones (see ``Result``)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    return [(int(queued), int(unconfirmed)) for queued, unconfirmed in TAKEOVER.findall(text)]


def _heard(refusals: dict[str, list[float]], runs: list[Run]) -> dict[str, bool]:
    """Of each address the sink refused: whether once during a run that was not killed."""
    ended = [run for run in runs if not run.killed]
    return {
        address: any(run.started_at <= moment <= run.ended_at for moment in times for run in ended)
        for address, times in refusals.items()
    }


def _calibrate(plan: Plan, config_path: Path, root: Path, log: Path) -> Timing:
    """A whole send to a scratch sink, then one with nothing left to do, on a scratch store."""
    sink = FaultSink(plan.transport, root / "calibration-record.txt", plan.sink_faults, plan.seed)
    try:
        write_config(config_path, provider=provider_for(plan, sink.port))
        whole = run_send(config_path, log, None, plan.run_timeout)
        idle = run_send(config_path, log, None, plan.run_timeout)
    finally:
        sink.stop()
    return Timing(idle.seconds, max(0.1, whole.seconds - idle.seconds))


def _kill_delay(plan: Plan, timing: Timing | None, rng: random.Random) -> float:
    """A share of the kills in start-up; the rest each a kill's share of the send on average."""
    if timing is not None and rng.random() < plan.early:
        return rng.uniform(0.0, timing.startup_s)
    return (timing.startup_s if timing else 0.0) + _share(plan, timing, rng)


def _share(plan: Plan, timing: Timing | None, rng: random.Random) -> float:
    """How long a sender works before its kill: on average its share of the whole send,
    over the rounds and the senders of each (whose last one outlives the first by one)."""
    if timing is None:
        assert plan.kill_window is not None
        return rng.uniform(*plan.kill_window)
    return rng.uniform(0.0, 2.0) * timing.work_s / (plan.kills * plan.senders)


def _ends(runs: list[Run]) -> str:
    return "; ".join(f"{run.meaning} after {run.seconds:.2f} s" for run in runs)


def _finish(plan: Plan, config_path: Path, log: Path, say: Callable[[str], None]) -> list[Run]:
    """Run the send without kills until it says it is complete (or not to run it again)."""
    runs: list[Run] = []
    while len(runs) < plan.final_runs:
        run = run_send(config_path, log, None, plan.run_timeout)
        runs.append(run)
        say(f"  final run {len(runs)}: {run.meaning} (exit {run.status}) after {run.seconds:.2f} s")
        if run.status not in RUN_AGAIN:
            break
        if run.status == 8:
            time.sleep(1.0)
    return runs


# --- report ---------------------------------------------------------------------------------


def table(result: Result) -> str:
    plan, found = result.plan, result.audit
    early = sum(
        1
        for run in result.rounds
        if run.killed and result.timing and (run.delay or 0) < result.timing.startup_s
    )
    finals = ", ".join(str(run.status) for run in result.final)
    faults = ", ".join(f"{kind} {count}" for kind, count in result.sink.get("faults", {}).items())
    rows = [
        ("recipients", f"{found.recipients:,}", ""),
        (
            "kills",
            f"{result.kills}",
            f"in {plan.kills} rounds of {plan.senders} sender(s)"
            + (", in one the other sender(s) ran to their end" if plan.senders > 1 else "")
            + (f", {early} in start-up" if result.timing else ""),
        ),
        ("lost", f"{len(found.lost):,}", "ledger says sent, sink never took it"),
        ("duplicated", f"{len(found.duplicated):,}", f"{found.extra_copies:,} extra copies"),
        ("unconfirmed, sink took it", f"{found.unconfirmed_seen:,}", ""),
        ("unconfirmed, sink did not", f"{found.unconfirmed_unseen:,}", ""),
        (
            "refused",
            f"{len(found.refused):,}",
            f"{len(found.refused_seen)} taken by the sink, "
            f"{len(found.refusals_unrecorded)} refused by it but not in the ledger",
        ),
        ("still queued", f"{found.still_queued:,}", "queued, retry or sending at the end"),
    ]
    rows += [
        (
            "taken over",
            f"{len(result.takeovers)}",
            "times a sender settled a killed one's batches: "
            f"{sum(q for q, _ in result.takeovers):,} queued again and sent, "
            f"{sum(u for _, u in result.takeovers):,} unconfirmed",
        )
    ] * (plan.senders > 1)
    rows += [
        ("ledger equals sink", "yes" if found.ledger_equals_sink else "NO", ""),
        ("send complete", "yes" if result.complete else "NO", f"final exit statuses: {finals}"),
        ("faults injected", "", faults),
    ]
    title = (
        f"{plan.transport}: {plan.recipients:,} recipients, {plan.kills} kill rounds, "
        f"seed {plan.seed}, {result.seconds:.0f} s"
    )
    lines = [title, "-" * 78]
    lines += [f"  {name:<27} {value:>9}  {detail}".rstrip() for name, value, detail in rows]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 and 1,000 recipients, 8 kills")
    parser.add_argument("--seed", type=int, default=1, help="seed of the faults and the kills")
    parser.add_argument("--only", choices=["sendgrid", "smtp"], action="append")
    parser.add_argument("--kills", type=int, help="kill rounds per transport (20, 8 with --quick)")
    parser.add_argument("--early", type=float, help="share of the kills during start-up (0.2)")
    parser.add_argument(
        "--kill-window",
        metavar="LOW:HIGH",
        help="kill after a delay drawn from LOW to HIGH seconds instead of the calibrated one",
    )
    parser.add_argument(
        "--sendgrid-faults",
        metavar="SPEC",
        help="fault spec of the SendGrid sink (a refused address 90%% down the list is added)",
    )
    parser.add_argument(
        "--smtp-faults",
        metavar="SPEC",
        help="fault spec of the SMTP sink (a refused address is added likewise)",
    )
    parser.add_argument("--recipients", type=int, help="recipients of every transport")
    parser.add_argument("--work", type=Path, help="keep the projects, logs and records here")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--store", metavar="URL", help="a PostgreSQL database to keep the stores in")
    where.add_argument(
        "--postgres", action="store_true", help="the same in a throw-away PostgreSQL cluster"
    )
    args = parser.parse_args()

    changes: dict[str, Any] = {"seed": args.seed}
    if args.kills is not None:
        changes["kills"] = args.kills
    if args.early is not None:
        changes["early"] = args.early
    if args.kill_window:
        low, _, high = args.kill_window.partition(":")
        changes["kill_window"] = (float(low), float(high))
    if args.recipients:
        changes["recipients"] = args.recipients
    shared = bool(args.store or args.postgres)
    faults = {"sendgrid": args.sendgrid_faults, "smtp": args.smtp_faults}
    plans = [
        replace(
            plan,
            **changes,
            **({"faults": faults[plan.transport]} if faults[plan.transport] else {}),
            senders=SHARED.get(plan.transport, 1) if shared else 1,
        )
        for plan in (QUICK_PLANS if args.quick else FULL_PLANS)
        if plan.transport in (args.only or ["sendgrid", "smtp"])
    ]
    for plan in plans:
        try:
            plan.check()
        except ValueError as exc:
            parser.error(f"{plan.transport} faults: {exc}")

    results = []
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as tmp, _server(args) as store:
        work = args.work or Path(tmp)
        for plan in plans:
            print(
                f"{plan.transport}, {plan.recipients:,} recipients, {plan.senders} sender(s) "
                f"a round{' on PostgreSQL' if store else ''}, faults {plan.sink_faults}",
                flush=True,
            )
            say = lambda line: print(line, flush=True)  # noqa: E731
            results.append(run_campaign(plan, work, say=say, store=store))

    text = "\n\n".join(table(result) for result in results)
    print()
    print(text)
    path = write_results(
        f"faults-{'quick-' if args.quick else ''}{'pg-' if shared else ''}",
        seed=args.seed,
        table=text,
        results=[result.figures() for result in results],
    )
    print(f"\nresults: {path.relative_to(REPO)}")
    sys.exit(0 if all(_holds(result) for result in results) else 1)


@contextmanager
def _server(args: argparse.Namespace) -> Iterator[str | None]:
    """The PostgreSQL database the stores go in: ``--store``'s, a throw-away cluster's
    (``--postgres``, stopped at the end), or None for SQLite files."""
    if not args.postgres:
        yield args.store
        return
    sys.path.insert(0, str(REPO / "tests"))
    from servers.postgres_cluster import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster.base_url()
    finally:
        cluster.stop()


def _holds(result: Result) -> bool:
    found = result.audit
    return not (found.lost or found.duplicated) and found.ledger_equals_sink and result.complete


if __name__ == "__main__":
    main()
