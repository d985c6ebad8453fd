"""Uploaded models shared between sessions, fairly: no session can evict another's.

Validating an upload costs seconds of CPU, so both outcomes are remembered by
the content's hash: an accepted model (shared by every session that uploaded
the same bytes) and a refusal (its message, so a bad file is never validated
twice). Each session owns at most `per_session` accepted models; a new one
drops that session's own oldest, never another session's. When the server
holds `capacity` models that all have owners, a new upload is refused with a
clear message instead of evicting anyone. Entries unused for `ttl_s` go.

Pure Python (no Streamlit) so it can be tested on its own.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class UploadRefused(ValueError):
    """The upload cannot be taken: its own refusal, or a full server."""


@dataclass
class _Entry:
    model: Any
    owners: set[str] = field(default_factory=set)
    used: float = 0.0


def content_key(spec: bytes, weights: bytes) -> str:
    """The hash naming an upload (lengths first, so the two files cannot blur)."""
    digest = hashlib.sha256()
    for part in (spec, weights):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class UploadCache:
    """Accepted uploads with their owning sessions, and remembered refusals."""

    def __init__(
        self,
        per_session: int = 3,
        capacity: int = 24,
        refusals: int = 256,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_session, self.capacity, self.ttl_s = per_session, capacity, ttl_s
        self._max_refusals = refusals
        self._clock = clock
        self._lock = threading.Lock()
        self._models: dict[str, _Entry] = {}
        self._refused: OrderedDict[str, str] = OrderedDict()
        self._owned: dict[str, list[str]] = {}

    def lookup(self, session: str, key: str) -> Any | None:
        """The model for `key` if it was accepted (now also `session`'s), None if
        unknown; raises UploadRefused with the remembered reason if refused."""
        with self._lock:
            self._expire()
            if key in self._refused:
                self._refused.move_to_end(key)
                raise UploadRefused(self._refused[key])
            entry = self._models.get(key)
            if entry is None:
                return None
            self._own(session, key, entry)
            return entry.model

    def store(self, session: str, key: str, model: Any) -> Any:
        """Keep an accepted model for `session`; raises UploadRefused if full."""
        with self._lock:
            self._expire()
            entry = self._models.get(key)
            if entry is None:
                mine = self._owned.get(session, [])
                frees_one = len(mine) >= self.per_session and self._models[
                    mine[0]
                ].owners == {session}
                if len(self._models) >= self.capacity and not frees_one:
                    raise UploadRefused(
                        "the server holds as many uploaded models as it can right "
                        "now; try again later or use a shipped model"
                    )
                entry = self._models[key] = _Entry(model)
            self._own(session, key, entry)
            return entry.model

    def refuse(self, key: str, reason: str) -> None:
        """Remember that the content `key` was refused, with its reason."""
        with self._lock:
            self._refused[key] = reason
            self._refused.move_to_end(key)
            while len(self._refused) > self._max_refusals:
                self._refused.popitem(last=False)

    def owned(self, session: str) -> list[str]:
        """The keys `session` owns, oldest first."""
        with self._lock:
            return list(self._owned.get(session, []))

    def __len__(self) -> int:
        return len(self._models)

    def _own(self, session: str, key: str, entry: _Entry) -> None:
        entry.used = self._clock()
        mine = self._owned.setdefault(session, [])
        if key in mine:
            mine.remove(key)
        mine.append(key)
        entry.owners.add(session)
        while len(mine) > self.per_session:
            self._disown(session, mine.pop(0))

    def _disown(self, session: str, key: str) -> None:
        entry = self._models.get(key)
        if entry is None:
            return
        entry.owners.discard(session)
        if not entry.owners:
            del self._models[key]

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._models.items() if now - e.used > self.ttl_s]:
            for session in self._models[key].owners:
                owned = self._owned.get(session, [])
                if key in owned:
                    owned.remove(key)
            del self._models[key]
