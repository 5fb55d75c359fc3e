"""Names seen to match a pattern, remembered so the pattern runs once per name rather than once per record.

Parsers' fast paths (auditd's and CEF's ``key=value`` splitting) check each key against the
pattern the general path's regex would accept; keys are few and repeat on every record, so
the ones that matched are kept in a set (bounded: keys come from the input).
"""

from __future__ import annotations

import re


class KnownNames:
    """``name in names.seen or names.matches(name)``: a set lookup for the names met before."""

    def __init__(self, pattern: str, limit: int = 4096) -> None:
        self._pattern = re.compile(pattern)
        self._limit = limit
        #: names that matched (at most ``limit``)
        self.seen: set[str] = set()

    def matches(self, name: str) -> bool:
        """Whether ``name`` matches the whole pattern; remembered in :attr:`seen` while there is room."""
        if not self._pattern.fullmatch(name):
            return False
        if len(self.seen) < self._limit:
            self.seen.add(name)
        return True
