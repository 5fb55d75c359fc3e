"""The search-engine store's pure parts: URLs and registration (the cluster itself: the contract suite)."""

from __future__ import annotations

import pytest

from store.elastic import parse_url
from store.errors import StoreError
from store.es_mapping import Flavor
from store.registry import open_store


def test_urls_give_flavor_hosts_tls_and_credentials() -> None:
    es = parse_url("elasticsearch+https", "elastic:p%40ss@es1:9200,es2:9200/?prefix=hanoi&ca_certs=/etc/ca.pem")
    assert es["flavor"] is Flavor.ELASTICSEARCH
    assert es["hosts"] == ["https://es1:9200", "https://es2:9200"]
    assert es["auth"] == ("elastic", "p@ss")
    assert (es["prefix"], es["ca_certs"], es["refresh"]) == ("hanoi", "/etc/ca.pem", "wait_for")
    os_ = parse_url("opensearch", "127.0.0.1:9200?refresh=false")
    assert os_["flavor"] is Flavor.OPENSEARCH and os_["hosts"] == ["http://127.0.0.1:9200"] and os_["auth"] is None


@pytest.mark.parametrize(
    ("rest", "message"),
    [
        ("", "has no host"),
        ("h:9200?prefix=Hanoi", "lowercase"),
        ("h:9200?refresh=sometimes", "refresh must be"),
        ("h:9200?shards=3", "unknown option"),
    ],
)
def test_bad_urls_say_what_is_wrong(rest: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_url("elasticsearch", rest)


def test_the_schemes_are_registered_and_an_unreachable_cluster_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="unreachable"):
        open_store("elasticsearch://127.0.0.1:1")


def test_an_event_with_a_lone_surrogate_is_sent_with_u_fffd_and_the_others_as_they_are() -> None:
    from store.elastic import storable
    from store.es_bulk import BulkOp
    from store.event import Event
    from tests.helpers import T0

    hostile = Event("e1", T0, {"message": "login \udcff failed", "user.name": "bob"})
    with pytest.raises(UnicodeEncodeError):  # what the bulk body's UTF-8 would do to the whole batch
        BulkOp("events", hostile.id, hostile.to_document()).size()
    sent = storable(hostile)
    assert sent.id == hostile.id and sent.timestamp == hostile.timestamp
    assert sent.fields["message"] == "login \ufffd failed" and sent.fields["user.name"] == "bob"
    assert BulkOp("events", sent.id, sent.to_document()).size() > 0
    plain = Event("e2", T0, {"message": "đăng nhập thất bại"})
    assert storable(plain) is plain
