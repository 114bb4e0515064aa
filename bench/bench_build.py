"""Build-time benchmark: an issue of 20 items, median of repeated runs, split by stage.

Targets: render stage <= 100 ms warm; `newsletter build` end to end (a fresh process,
as a scheduler runs it) <= 1 s. The build's cache (.newsletter/cache/) is deleted before
every run, so each one reads and renders as a build after new content does.

    .venv/bin/python bench/bench_build.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
newsletter:
  name: Bench Weekly
  site_url: https://bench.example.org
  language: en-GB
  timezone: Europe/London
  sender: {{name: Bench, address: bench@example.org}}
  postal_address: 1 Bench Street, London
sources:
  - name: blog
    type: markdown
    path: content
    guest: {{folders: [guest]}}
selection: {{posts: {posts}, guest_columns: {guests}}}
template: {{directory: {templates}}}
"""

POST = """\
---
title: "Bench post {n}: what leaders learned about {topic}"
date: {day}
author: Author {n}
author_role: Director of Services {n}
tags: [bench]
---
{body}
"""

PARAGRAPH = (
    "Public services change when the people leading them make room for the people doing "
    "the work. This paragraph stands in for a real post, with [a link](/related/{n}/) and "
    "enough words to make the summary and the body a realistic size for an e-mail issue. "
)


def make_project(root: Path, posts: int = 16, guests: int = 4) -> Path:
    content = root / "content"
    (content / "guest").mkdir(parents=True)
    start = date(2026, 11, 1)
    for n in range(posts + guests):
        folder = content / "guest" if n >= posts else content
        body = "\n\n".join(PARAGRAPH.format(n=n) for _ in range(4))
        day = start + timedelta(days=n % 20)
        topic = ["trust", "budgets", "hiring", "data", "care"][n % 5]
        (folder / f"post-{n:02d}.md").write_text(
            POST.format(n=n, day=day.isoformat(), topic=topic, body=body), encoding="utf-8"
        )
    (root / "newsletter.yml").write_text(
        CONFIG.format(posts=posts, guests=guests, templates=REPO / "templates" / "default"),
        encoding="utf-8",
    )
    return root / "newsletter.yml"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def bench_library(config_path: Path, runs: int) -> dict[str, float]:
    """Stage timings from the library API in one warm process (dry runs write nothing)."""
    from newsletter.build import build_issue
    from newsletter.config import load_config
    from newsletter.memo import cache_dir

    loaded = load_config(config_path)
    on = date(2026, 11, 24)
    build_issue(loaded, on=on, dry_run=True)  # warm-up: imports, template compilation
    per_stage: dict[str, list[float]] = {}
    totals: list[float] = []
    for _ in range(runs):
        shutil.rmtree(cache_dir(config_path.parent), ignore_errors=True)
        started = time.perf_counter()
        result = build_issue(loaded, on=on, dry_run=True)
        totals.append(time.perf_counter() - started)
        for stage, seconds in result.timings.items():
            per_stage.setdefault(stage, []).append(seconds)
    assert len(result.rendered.selection.items) == 20, "the benchmark issue must have 20 items"
    report = {f"{stage}_ms": median_ms(values) for stage, values in per_stage.items()}
    report["library_total_ms"] = median_ms(totals)
    report["html_kb"] = len(result.rendered.html.encode()) / 1024
    return report


def bench_cli(config_path: Path, runs: int) -> dict[str, float]:
    """`newsletter build` in a fresh process each time, as cron runs it."""
    exe = Path(sys.executable).with_name("newsletter")
    issues = config_path.parent / "issues"
    times = []
    for _ in range(runs):
        shutil.rmtree(issues, ignore_errors=True)
        shutil.rmtree(config_path.parent / ".newsletter" / "cache", ignore_errors=True)
        started = time.perf_counter()
        subprocess.run(
            [str(exe), "build", "--config", str(config_path), "--date", "2026-11-24"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return {"cli_build_ms": median_ms(times), "cli_build_min_ms": min(times) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsletter-bench-") as tmp:
        config_path = make_project(Path(tmp))
        report = bench_library(config_path, args.runs)
        report.update(bench_cli(config_path, max(5, args.runs // 3)))
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"issue of 20 items, median of {args.runs} runs (warm, dry run):")
    for key, value in report.items():
        print(f"  {key:22} {value:8.1f}")
    verdict_render = "ok" if report["render_ms"] <= 100 else "MISSED"
    verdict_cli = "ok" if report["cli_build_ms"] <= 1000 else "MISSED"
    print(f"target render <= 100 ms: {verdict_render}; `newsletter build` <= 1 s: {verdict_cli}")


if __name__ == "__main__":
    main()
