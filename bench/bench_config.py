"""Loading newsletter.yml: a ~1 MB valid config, and a 50 MB one the size limit refuses.

Target: the median load (read, parse, expand ``${VAR}``, validate: what every command
does first) of a 1 MB config at or under 1 s, and a 50 MB file refused at once, not parsed.
The big config is the bundled one with thousands of feed sources and lists added, some
using ``${VAR}`` and an anchored guest rule, so every step of the load has work to do.

    .venv/bin/python bench/bench_config.py [--runs 7] [--size-mb 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from newsletter.config import load_config
from newsletter.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def big_config(target_bytes: int) -> str:
    """The bundled config with sources and lists appended until it reaches the target size."""
    text = REPO.joinpath("newsletter.yml").read_text(encoding="utf-8")
    head, _, tail = text.partition("\nselection:")
    anchored = (
        "  - name: shared-rules\n    type: feed\n    url: feeds/rules.xml\n"
        "    guest: &guest\n      tags: [guest-column, opinion]\n      authors: [Ann, Bo]\n"
    )
    sources = [head, anchored]
    lists = []
    size = sum(map(len, sources)) + len(tail)
    n = 0
    while size < target_bytes:
        n += 1
        guest = "    guest: *guest\n" if n % 100 == 0 else "    guest:\n      folders: [guest]\n"
        source = (
            f"  - name: partner-{n}\n    type: feed\n"
            f"    url: ${{BENCH_FEED_DIR}}/partner-{n}.xml\n    timeout: 5\n{guest}"
        )
        listed = f"  - name: region-{n}\n    description: Readers in region {n}, weekly\n"
        sources.append(source)
        lists.append(listed)
        size += len(source) + len(listed)
    body = "".join(sources) + "\nselection:" + tail
    return body.replace("lists:\n", "lists:\n" + "".join(lists), 1)


def median_load(path: Path, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds: on a shared machine the CPU time says what the code costs."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        load_config(path)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return statistics.median(wall), statistics.median(cpu)


def refusal_time(path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        load_config(path)
    except ConfigError as exc:
        return time.perf_counter() - started, exc.problems[0]
    raise SystemExit(f"{path} was loaded; the size limit should have refused it")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--size-mb", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("BENCH_FEED_DIR", "feeds")
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "newsletter.yml"
        config.write_text(big_config(int(args.size_mb * 1024 * 1024)), encoding="utf-8")
        loaded = load_config(config)
        print(
            f"config of {config.stat().st_size / 1024 / 1024:.2f} MB, "
            f"{len(loaded.settings.sources):,} sources, {len(loaded.settings.lists):,} lists"
        )
        seconds, cpu = median_load(config, args.runs)
        verdict = "ok" if seconds <= 1.0 else "over the 1 s target"
        print(
            f"load and validate, median of {args.runs}: {seconds:.3f} s "
            f"({cpu:.3f} s of CPU; {verdict})"
        )
        huge = Path(folder) / "huge.yml"
        with huge.open("w", encoding="utf-8") as out:
            out.write(config.read_text(encoding="utf-8") * 50)
        seconds, message = refusal_time(huge)
        size_mb = huge.stat().st_size / 1024 / 1024
        print(f"{size_mb:.0f} MB config refused in {seconds * 1000:.2f} ms:")
        print(f"  {message}")


if __name__ == "__main__":
    main()
