"""argparse types for the jobs' number options: a bad value is refused with the allowed range and the value."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(minimum: int) -> Callable[[str], int]:
    """A type for a whole number of at least `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def number_between(low: float, high: float, include_high: bool = True) -> Callable[[str], float]:
    """A type for a number from `low` to `high` (`high` itself allowed unless include_high is False)."""
    allowed = f"from {low:g} to {high:g}" if include_high else f"from {low:g} up to (not including) {high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (low <= value <= high if include_high else low <= value < high):
            raise argparse.ArgumentTypeError(f"must be a number {allowed}, got {text!r}")
        return value

    return parse
