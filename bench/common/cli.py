"""Command-line plumbing shared by the benchmark runners (`bench/*/run.py`)."""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parents[2]

# The Debian package of each tool the benchmarks start.
PACKAGES = {"sipp": "sip-tester", "kamailio": "kamailio", "taskset": "util-linux"}


def parse_rates(text: str) -> tuple[int, ...]:
    """`--rates 10,50,100` as sorted positive integers (an argparse `type`)."""
    rates = tuple(int(part) for part in text.split(",") if part.strip())
    if not rates or any(rate <= 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be positive integers, comma-separated")
    return tuple(sorted(rates))


def check_tools(tools: Sequence[str]) -> None:
    """Exit with the apt-get line to run when one of `tools` is not on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = " ".join(dict.fromkeys(PACKAGES.get(tool, tool) for tool in tools))
        sys.exit(
            f"missing {', '.join(missing)}: apt-get install -y --no-install-recommends {packages}"
        )


def _exit_on_sigterm(signum: int, frame: object) -> NoReturn:
    # Turn SIGTERM into SystemExit so `finally` blocks stop every child by PID.
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind the harness (its `finally` blocks stop the children by PID)."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def keep_config(source: Path, target: Path, masks: Sequence[tuple[str, str]]) -> str | None:
    """Copy a generated config next to the results with run-specific parts masked.

    `masks` are (regex, replacement) pairs (ports, secrets, work dirs). Returns
    the copy's path as shown in the report, or None when `source` is missing.
    """
    if not source.exists():
        return None
    text = source.read_text()
    for pattern, replacement in masks:
        text = re.sub(pattern, replacement, text)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return shown(target)
