# -*- coding: utf-8 -*-
# Copyright: hangup.ssh contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way the collection's modules check what the argument spec cannot say.

Each module has a pure `input_problems(params)` that returns one message per
problem, each naming its parameter; `fail_on` turns them into one fail_json
before anything runs.
"""

from __future__ import annotations

import math


def number_problem(name, value, low, high, unit="seconds", low_open=False):
    """A message when value is not a finite number from low to high (above low when low_open), else None."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value) or not (value > low if low_open else value >= low) \
            or value > high:
        span = "above %s and at most %s" % (low, high) if low_open else "from %s to %s" % (low, high)
        return "%s must be a number of %s %s, got %s" % (name, unit, span, value)
    return None


def fail_on(module, problems, **extra):
    """One fail_json naming every problem, when there are any."""
    if problems:
        module.fail_json(msg="; ".join(problems), **extra)
