"""Conventions over every registered parser (the pack-wide test of the parser modules)."""

from __future__ import annotations

import re

import pytest

from collectors.base import CollectorError, Parser, RawRecord, get_parser, parsers, register_parser
from store.event import Event

BUILTIN = [
    "auditd",
    "camera.platform",
    "cef",
    "ecs.json",
    "iot.mqtt",
    "iot.platform",
    "scada.csv",
    "suricata.eve",
    "syslog",
    "web.access",
    "windows.evtx",
    "zeek",
]


def test_every_builtin_parser_is_registered_once_with_a_description() -> None:
    names = [cls.name for cls in parsers()]
    assert names == BUILTIN
    for cls in parsers():
        assert cls.description and cls.dataset
        assert cls.__module__.startswith("collectors.parsers.")
        assert isinstance(get_parser(cls.name), cls)


def test_a_duplicate_name_fails_loudly() -> None:
    class Again(Parser):
        name = "syslog"
        dataset = "syslog"

        def parse(self, record: RawRecord) -> list[Event]:
            return []

    with pytest.raises(CollectorError, match="registered twice"):
        register_parser(Again)


def test_unknown_parser_names_the_known_ones() -> None:
    with pytest.raises(CollectorError, match=re.escape("known: " + ", ".join(BUILTIN))):
        get_parser("nope")
