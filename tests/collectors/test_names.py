"""KnownNames: the pattern decides, the set only remembers."""

from __future__ import annotations

from collectors.names import KnownNames


def test_names_that_match_are_remembered_up_to_the_limit_and_others_never() -> None:
    names = KnownNames(r"[a-z]+", limit=2)
    assert names.matches("exe") and names.matches("pid") and names.matches("uid")
    assert names.seen == {"exe", "pid"}  # the third matched but there was no room
    assert not names.matches("a=b") and not names.matches("") and "a=b" not in names.seen
