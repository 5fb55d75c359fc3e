"""The personal-data policy on real camera-platform records, through the ingest pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collectors.base import RawRecord, get_parser
from collectors.pipeline import IngestPipeline
from collectors.privacy import Action, PrivacyError, PrivacyFilter, PrivacyPolicy, load_key, load_policies, mask
from store.event import Event
from store.sqlite import SQLiteStore
from tests.helpers import REPO, event

CAMERA = REPO / "tests" / "data" / "collectors" / "camera.jsonl"
KEY = b"k" * 32


def _ingest(store: SQLiteStore, privacy: PrivacyFilter, source: str = "http:vms-hn-01") -> list[Event]:
    pipeline = IngestPipeline(store, enrichers=[privacy], name="privacy-test")
    lines = CAMERA.read_text().splitlines()[:9]  # the nine good records
    pipeline.ingest([RawRecord(line, source, str(i)) for i, line in enumerate(lines)], get_parser("camera.platform"))
    return sorted(store.iter_events(), key=lambda e: e.timestamp)


def test_personal_fields_are_pseudonymised_consistently(store: SQLiteStore) -> None:
    events = _ingest(store, PrivacyFilter([PrivacyPolicy(source="http:vms-*")], KEY))
    first = events[0]
    pseudonym = first.get("user.name")
    assert pseudonym.startswith("ps:") and len(pseudonym) == 27
    assert first.get("related.user") == (pseudonym,)
    # same person, same pseudonym: correlation across events still works
    admins = [e for e in events if e.get("user.name") == pseudonym]
    assert len(admins) >= 3
    for e in events:
        assert "admin" not in e.get("message", ""), e.get("message")
        assert e.get("event.original") is None
        assert json.dumps(e.to_document()).count('"admin"') == 0
    assert "user " + pseudonym in first.get("message")
    assert PrivacyFilter([], KEY).pseudonymise.matches("admin", pseudonym)
    assert not PrivacyFilter([], b"z" * 32).pseudonymise.matches("admin", pseudonym)


def test_policy_may_keep_originals_and_fields(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "keep.db")
    try:
        policy = PrivacyPolicy(source="http:vms-*", keep_original=True, fields={"user.name": Action.KEEP})
        events = _ingest(store, PrivacyFilter([policy], KEY))
        assert events[0].get("user.name") == "admin"
        assert events[0].get("event.original", "").startswith('{"ts": "2026-11-20T08:00:00.123Z"')
        assert events[0].get("related.user")[0].startswith("ps:")  # not excepted: still pseudonymised
    finally:
        store.close()


def test_first_matching_policy_wins_and_default_applies() -> None:
    privacy = PrivacyFilter([PrivacyPolicy(source="syslog:*", personal=Action.DROP)], KEY,
                            default=PrivacyPolicy(sensitive=Action.MASK))
    dropped = privacy.enrich(event(fields={"labels.source": "syslog:udp:1", "user.name": "nguyenvana",
                                           "message": "login by nguyenvana"}))
    assert dropped.get("user.name") is None and dropped.get("message") == "login by [removed]"
    masked = privacy.enrich(event(fields={"labels.source": "http:alpr", "iot.plate": "29A-123.45"}))
    assert masked.get("iot.plate") == "29********" == mask("29A-123.45")


def test_key_is_created_once_private(tmp_path: Path) -> None:
    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert (tmp_path / "privacy.key").stat().st_mode & 0o077 == 0
    (tmp_path / "privacy.key").write_bytes(b"short")
    with pytest.raises(PrivacyError, match="at least 16"):
        load_key(tmp_path)


def test_policy_file_errors_say_where(tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    path.write_text(json.dumps({"sources": [{"source": "http:*"}, {"source": "x", "personal": "hide"}]}))
    with pytest.raises(PrivacyError, match=r"sources\[1\]\.personal: 'hide' is not an action"):
        load_policies(path)
    path.write_text(json.dumps({"sources": [{"fields": {"user.nmae": "keep"}}]}))
    with pytest.raises(PrivacyError, match=r"unknown field 'user\.nmae'"):
        load_policies(path)
    path.write_text(json.dumps({"sources": [{"source": "http:*", "sensitive": "drop"}]}))
    assert load_policies(path)[0].sensitive is Action.DROP
