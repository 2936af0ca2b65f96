"""Helpers shared by the metadata tests."""

from __future__ import annotations

import re

_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\S')


def significant(text: str) -> list[str]:
    """The text without comments and blank space: what "equal modulo comments and whitespace" compares."""
    return [token for token in _TOKENS.findall(text) if not token.startswith("#")]
