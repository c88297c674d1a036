"""How a generation is cut before it is compared; evaluate.py applies the same rule.

Rule: strip surrounding whitespace, then keep only the text before the first blank line
(a line holding nothing but whitespace), stripped again.
"""

from __future__ import annotations

import re

_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")


def postprocess_generation(text: str) -> str:
    return _BLANK_LINE.split(text.strip(), maxsplit=1)[0].strip()
