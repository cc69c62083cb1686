"""The ranges a number setting may take, and the one check every number of every setting goes through.

A settings field declares its range with ``setting(..., within=POSITIVE)`` (:func:`simclr.settings.setting`);
:func:`simclr.settings.check_values` applies :func:`check_number` to every int and float field (and to the
items of a list of them) whatever the value came from: a flag, a recipe file, a run's saved config or a
dataclass built in Python. Every number must be finite (no NaN, no infinity: argparse and YAML both read
``nan`` and ``.inf``), a whole number where an int is meant, no larger in magnitude than :data:`MAX_WHOLE_NUMBER`
(a 400-digit integer means nothing to any setting and breaks whatever converts it to a tensor or a C long),
and inside the field's range. The message names the setting, the rule, the value and the flag that fixes it.

A duration (``--time-budget``) is a number with a unit: :func:`parse_duration` reads it, :func:`format_duration`
writes it back. This module knows no domain beyond what a number is, and imports nothing heavy.
"""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass

from simclr.errors import UserError

__all__ = [
    "AT_LEAST_TWO_VIEWS",
    "COUNT",
    "DURATION_FORMS",
    "FRACTION_BELOW_ONE",
    "MAX_WHOLE_NUMBER",
    "NON_NEGATIVE",
    "OPEN_FRACTION",
    "POSITIVE",
    "PROBABILITY",
    "SCALE",
    "SEED",
    "Range",
    "at_least",
    "check_number",
    "format_duration",
    "parse_duration",
]

MAX_WHOLE_NUMBER = 2**63 - 1  # the largest int64: every count, size and step of simclr ends up in one


@dataclass(frozen=True)
class Range:
    """The numbers a setting may take: from ``low`` to ``high`` (None: unbounded on that side), each end
    included unless ``low_open`` / ``high_open``; ``reason`` says why, in the message of a value outside.

    >>> Range(0, 1, high_open=True).describe(), POSITIVE.describe(), Range(1, 100).describe()
    ('within [0, 1)', '> 0', 'within 1..100')
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    reason: str = ""

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """The rule in a few characters: ``> 0``, ``>= 1``, ``within [0, 1)``, ``within 1..100``."""
        low, high = _number_text(self.low), _number_text(self.high)
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {high}"
        whole = all(float(end).is_integer() for end in (self.low, self.high))
        if whole and not (self.low_open or self.high_open):
            return f"within {low}..{high}"
        return f"within {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def at_least(low: int, reason: str = "") -> Range:
    """Whole numbers from ``low`` up."""
    return Range(low, reason=reason)


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
COUNT = at_least(1)  # how many of something: images, epochs, steps, neighbours
PROBABILITY = Range(0, 1)
SCALE = Range(0, 1, low_open=True)  # a part of the whole that cannot be empty: a crop's area, a label fraction
OPEN_FRACTION = Range(0, 1, low_open=True, high_open=True)  # a part held out: neither nothing nor everything
FRACTION_BELOW_ONE = Range(0, 1, high_open=True)  # 0 turns the feature off; 1 would leave nothing
AT_LEAST_TWO_VIEWS = at_least(2, "a contrastive loss pairs two views or more")
SEED = Range(0, 2**32 - 1, reason="numpy's seeds")


def _number_text(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _shown(value: object) -> str:
    """The value as the message shows it: short, even for a 400-digit integer."""
    short = reprlib.Repr()
    short.maxlong = 24
    return short.repr(value)


def check_number(value: object, kind: type, within: Range | None, name: str, fix: str) -> None:
    """Refuse ``value`` of setting ``name`` unless it is a finite number of ``kind`` (int or float) inside
    ``within``; the one-line message ends with ``fix`` (e.g. ``fix --lr``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        wanted = "a whole number" if kind is int else "a number"
        raise UserError(f"{name} must be {wanted}, got {_shown(value)}; {fix}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value}; {fix}")
    if isinstance(value, int) and abs(value) > MAX_WHOLE_NUMBER:
        raise UserError(f"{name} must be a whole number below 2**63, got {_shown(value)}; {fix}")
    if within is not None and value not in within:
        why = f" ({within.reason})" if within.reason else ""
        raise UserError(f"{name} must be {within.describe()}{why}, got {_shown(value)}; {fix}")


DURATION_FORMS = "90s, 10m, 2h, 1h30m or a number of seconds"
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str | float, name: str = "--time-budget") -> float:
    """A duration in seconds from ``90s``, ``10m``, ``2h``, ``1h30m`` (hours, minutes, seconds, in that order,
    each at most once) or a plain number of seconds; anything else, and a duration of 0, is a one-line
    UserError naming ``name`` and the accepted forms.

    >>> parse_duration("1h30m"), parse_duration("90s"), parse_duration("2.5"), parse_duration(600)
    (5400.0, 90.0, 2.5, 600.0)
    """
    shown = _shown(text)
    if isinstance(text, bool):
        raise UserError(f"{name} {shown} is not a duration; write it like {DURATION_FORMS}")
    compact = str(text).strip().lower().replace(" ", "")
    try:
        seconds = float(compact)
    except ValueError:
        match = _DURATION.fullmatch(compact)
        if match is None or not compact:
            raise UserError(f"{name} {shown} is not a duration; write it like {DURATION_FORMS}") from None
        hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"{name} must be a duration above 0, got {shown}; write it like {DURATION_FORMS}")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as :func:`parse_duration` reads them, to the second: ``1h30m``, ``9m58s``, ``42s``.

    >>> format_duration(5400), format_duration(598.4), format_duration(42)
    ('1h30m', '9m58s', '42s')
    """
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value]
    return "".join(parts) or "0s"
