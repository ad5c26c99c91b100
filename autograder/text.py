"""Text from students made safe to store and show: one rule, used wherever their text is read or written.

A notebook is JSON, and JSON can spell characters that no file can hold: a lone UTF-16 surrogate
(``"\\ud800"``) is valid JSON and valid ASCII, but cannot be encoded as UTF-8, so the first writer
that meets it (nbgrader's autograded notebook, an HTML page, a CSV) raises ``UnicodeEncodeError``.
A NUL character is stored fine but cuts text short in C-based tools and is refused by Python's
compiler and by CSV readers. Both become U+FFFD, the replacement character, which every writer
holds and every reader shows as a visible mark. Bidirectional controls (U+202E...) are legitimate
in right-to-left text and are kept; pages isolate each answer instead (``dir="auto"``).
"""
from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
UNSTORABLE = re.compile("[\ud800-\udfff\x00]")  # lone surrogates (a str holds no valid pair) and NUL


def repaired(text: str) -> tuple[str, int]:
    """``text`` with each lone surrogate and NUL replaced by U+FFFD, and how many were replaced."""
    return UNSTORABLE.subn(REPLACEMENT, text)


def storable(text: str) -> str:
    """``text`` as every writer can hold it (see ``repaired``)."""
    return UNSTORABLE.sub(REPLACEMENT, text)


def repaired_json(value: Any) -> tuple[Any, int]:
    """A parsed JSON value with every string (keys too) repaired; and the number of characters replaced."""
    if isinstance(value, str):
        return repaired(value)
    if isinstance(value, list):
        items = [repaired_json(item) for item in value]
        return [item for item, _ in items], sum(count for _, count in items)
    if isinstance(value, dict):
        count, result = 0, {}
        for key, item in value.items():
            new_key, key_count = repaired(key)
            result[new_key], item_count = repaired_json(item)
            count += key_count + item_count
        return result, count
    return value, 0
