"""Recipient checks at send time: ``refusals`` over batches of 1,000, and ``sendgrid_name``.

Target: a plain batch of 1,000 rows (ASCII addresses, printable names) well under 1 ms, so
a million-recipient send spends well under a second on it. Batches with non-ASCII names,
and batches holding a few refused rows, are measured too. Figures are the best of
``--runs`` repeats, in microseconds per batch.

    .venv/bin/python bench/bench_recipients.py [--runs 7]
"""

from __future__ import annotations

import argparse
import timeit

from newsletter.addresses import refusals, sendgrid_name

BATCH = 1000


def batches() -> dict[str, list[tuple[int, str, str]]]:
    plain = [(n, f"person.{n}+news@mail{n % 7}.example.org", f"Person {n}") for n in range(BATCH)]
    accented = [(n, email, f"{name} Zoë Ångström") for n, email, name in plain]
    mixed = list(plain)
    mixed[10] = (10, "josé@example.org", "José")
    mixed[500] = (500, "eve@example.org", "Eve\r\nBcc: all@example.org")
    return {"plain": plain, "non-ASCII names": accented, "2 refused of 1,000": mixed}


def best_us(call: object, runs: int, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=runs)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    for label, rows in batches().items():
        print(f"refusals, {label:<20} {best_us(lambda r=rows: refusals(r), runs, 100):8.0f} us")
    names = [name for _, _, name in batches()["plain"]]
    quoted = [f"Okafor, {name}" for name in names]
    for label, values in (("plain", names), ("with a comma", quoted)):
        call = lambda v=values: [sendgrid_name(name) for name in v]  # noqa: E731
        print(f"sendgrid_name x1,000, {label:<14} {best_us(call, runs, 100):8.0f} us")


if __name__ == "__main__":
    main()
