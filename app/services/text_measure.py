"""A policy-independent measure of a piece of free text (a justification), as facts the policies
judge: how many words, which distinct words, how many letters, and how many of those letters lie
in a keyboard run. Nothing here decides whether a text is good enough; the policies do
(``justification_own_words`` and ``justification_no_keyboard_runs`` in policies/shared/ccc_variables.yaml).

The measure, documented so anyone can recompute it:

- a *word* is a maximal run of letters (apostrophes inside kept), case-folded;
- ``words``: how many words; ``distinct_words``: the distinct ones, in order of first use;
- ``letters``: how many letters and digits in all;
- ``keyboard_run_letters``: how many letters and digits belong to a run of at least
  ``RUN_LENGTH`` characters in which each is the next key along one row of a QWERTY keyboard
  (``qwerty``, ``asdf``, ``lkjh``; either direction) or the next in the alphabet or among the
  digits (``abcd``, ``1234``, ``4321``)."""

from __future__ import annotations

import re
from typing import Any

RUN_LENGTH = 4
ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")
# (key, next key) -> the (row, direction) pairs in which the second follows the first.
_STEPS: dict[tuple[str, str], set[tuple[int, int]]] = {}
for _row, _keys in enumerate(ROWS):
    for _a, _b in zip(_keys, _keys[1:], strict=False):
        _STEPS.setdefault((_a, _b), set()).add((_row, 1))
        _STEPS.setdefault((_b, _a), set()).add((_row, -1))


def measure(text: str) -> dict[str, Any]:
    """The facts above for ``text`` (an empty text measures zero everywhere)."""
    words = [w.casefold() for w in _WORD.findall(text)]
    return {
        "words": len(words),
        "distinct_words": list(dict.fromkeys(words)),
        "letters": sum(1 for c in text if c.isalnum()),
        "keyboard_run_letters": _keyboard_run_letters(text.casefold()),
    }


def _keyboard_run_letters(text: str) -> int:
    """Letters and digits in runs of at least RUN_LENGTH keys, each the next along the same row in
    the same direction as the one before ("qwer", "4321"; never "eded", back and forth)."""
    total, run, ways, shared = 0, 1, set[tuple[int, int]](), 0
    for previous, current in zip(text, text[1:], strict=False):
        step = _STEPS.get((previous, current), set())
        ways = (ways & step) if run > 1 else step
        if ways:
            run += 1
            continue
        counted = run >= RUN_LENGTH
        total += run - shared if counted else 0
        # this pair may start the next run (its first key already counted if the last run was)
        run, ways, shared = (2, step, int(counted)) if step else (1, set(), 0)
    return total + (run - shared if text and run >= RUN_LENGTH else 0)
