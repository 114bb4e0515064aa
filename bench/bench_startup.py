"""Start-up time of the command line, side by side with a bare Python start.

Targets on this machine: `newsletter --help` <= 0.15 s and `newsletter build --dry-run`
(the bundled sample project) <= 0.35 s. The machine is shared, so each command runs in
turns with `python -c pass` and the medians and their ratio to it are printed: the ratio
says what the code costs when the absolute figures are inflated by other work.
Bytecode is written before measuring, as an installed package has it, and so is the
build's cache (.newsletter/cache/: the config checked, the sources read, the issue
rendered), as a project has it after its first command; the last row runs the dry run
with that cache deleted before each run, as after an edit to every input at once.

    .venv/bin/python bench/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEWSLETTER = [sys.executable, "-m", "newsletter"]
TARGETS = {"newsletter --help": 0.15, "newsletter build --dry-run": 0.35}
COLD = "build --dry-run, no cache"


def seconds(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        project = Path(folder)
        shutil.copy(REPO / "newsletter.yml", project / "newsletter.yml")
        shutil.copytree(REPO / "samples", project / "samples")
        shutil.copytree(REPO / "templates", project / "templates")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "newsletter --help": [*NEWSLETTER, "--help"],
            "newsletter build --dry-run": [*NEWSLETTER, "build", "--dry-run", "--date",
                                           "2026-11-24"],
        }  # fmt: skip
        commands[COLD] = commands["newsletter build --dry-run"]
        for command in commands.values():  # writes the bytecode; not measured
            seconds(command, project, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                if name == COLD:
                    shutil.rmtree(project / ".newsletter" / "cache", ignore_errors=True)
                samples[name].append(seconds(command, project, env))
    bare = statistics.median(samples["python -c pass"])
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'x python':>9}  target")
    for name, times in samples.items():
        median = statistics.median(times)
        target = TARGETS.get(name)
        verdict = (
            ""
            if target is None
            else f"<= {target:.2f} s: " + ("met" if median <= target else "MISSED")
        )
        print(f"{name:<28} {median:>9.3f} {min(times):>7.3f} {median / bare:>9.1f}  {verdict}")


if __name__ == "__main__":
    main()
