"""Uploads under load: refusals remembered, per-session caps, no eviction of others."""

from __future__ import annotations

import pytest

from dashboard.upload_cache import UploadCache, UploadRefused, content_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_key_tells_the_two_files_apart():
    assert content_key(b"ab", b"c") != content_key(b"a", b"bc")


def test_a_refusal_is_remembered_so_a_bad_file_is_validated_once():
    cache = UploadCache()
    key = content_key(b"spec", b"bad")
    assert cache.lookup("a", key) is None
    cache.refuse(key, "weights.safetensors is not a valid safetensors file")
    for session in ("a", "b"):
        with pytest.raises(UploadRefused, match="not a valid safetensors"):
            cache.lookup(session, key)


def test_one_session_uploading_many_models_never_evicts_another_sessions():
    cache = UploadCache(per_session=3, capacity=8)
    cache.store("b", "theirs", "model-b")
    for i in range(9):
        cache.store("a", f"mine-{i}", f"model-{i}")
    assert cache.lookup("b", "theirs") == "model-b"
    assert cache.owned("a") == ["mine-6", "mine-7", "mine-8"]
    assert cache.lookup("c", "mine-0") is None  # dropped with its only owner
    assert len(cache) == 4


def test_a_shared_upload_stays_while_any_session_owns_it():
    cache = UploadCache(per_session=1, capacity=8)
    cache.store("a", "same", "model")
    assert cache.lookup("b", "same") == "model"
    cache.store("a", "other", "model-2")  # a's own oldest goes, b still has it
    assert cache.lookup("c", "same") == "model"


def test_a_full_server_refuses_new_uploads_instead_of_evicting():
    cache = UploadCache(per_session=3, capacity=2)
    cache.store("a", "one", 1)
    cache.store("b", "two", 2)
    with pytest.raises(UploadRefused, match="as many uploaded models as it can"):
        cache.store("c", "three", 3)
    assert cache.lookup("a", "one") == 1 and cache.lookup("b", "two") == 2


def test_a_session_at_its_cap_replaces_its_own_oldest_even_when_full():
    cache = UploadCache(per_session=1, capacity=1)
    cache.store("a", "one", 1)
    assert cache.store("a", "two", 2) == 2
    assert cache.owned("a") == ["two"] and len(cache) == 1


def test_unused_uploads_expire():
    clock = Clock()
    cache = UploadCache(ttl_s=10, clock=clock)
    cache.store("a", "one", 1)
    clock.now = 11
    assert cache.lookup("a", "one") is None
    assert cache.owned("a") == [] and len(cache) == 0
