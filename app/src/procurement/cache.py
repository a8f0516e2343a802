"""Read cache: Redis when configured, otherwise a bounded in-process LRU.

Entries live under versioned namespaces: a write bumps the version of each
namespace it touches (after its transaction commits), so every later read
builds a new key and can never see the old value. Old entries simply expire.

Redis is optional. When it fails the cache steps aside for a few seconds and
every read goes to the database; the service reports itself degraded. A
process that saw Redis fail bumps a global epoch once Redis answers again,
because writes made during the outage could not bump their namespaces.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import mmap
import multiprocessing
import struct
import threading
import time
from collections import OrderedDict
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import redis
from flask import Flask, current_app

from procurement import counters

log = logging.getLogger(__name__)

NAMESPACES = ("suppliers", "orders", "requests", "items", "users", "figures")
PREFIX = "procurement:"
_EPOCH_KEY = PREFIX + "ver:epoch"
_RETRY_AFTER_SECONDS = 2.0
_MISSING = object()


# -- value codec: JSON with tags for the types our rows carry -------------
def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    raise TypeError(f"cannot cache {type(value).__name__}")


def _hook(obj: Dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, raw),) = obj.items()
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$d":
            return dt.date.fromisoformat(raw)
        if tag == "$dec":
            return Decimal(raw)
        if tag == "$b":
            return base64.b64decode(raw)
    return obj


_RAW = b"\x00"  # marks bytes stored as they are (pre-rendered JSON responses)


def encode(value: Any) -> bytes:
    if isinstance(value, bytes):
        return _RAW + value
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


def decode(raw: bytes) -> Any:
    if raw[:1] == _RAW:
        return raw[1:]
    return json.loads(raw, object_hook=_hook)


def _full_key(strategy: str, versions: Iterable[Any], key: str) -> str:
    return "{}{}:{}:{}".format(PREFIX, strategy, ".".join(map(str, versions)), key)


# -- namespace versions shared by forked gunicorn workers -----------------
class SharedVersions:
    """Namespace counters in an anonymous shared mapping.

    Created in the gunicorn master before it forks, so every worker sees the
    same counters and a write in one worker invalidates the in-process
    caches of all of them.
    """

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, 8 * (len(NAMESPACES) + 1))
        self._lock = multiprocessing.Lock()

    def get(self, slot: int) -> int:
        return struct.unpack_from("q", self._map, slot * 8)[0]

    def bump(self, slot: int) -> None:
        with self._lock:
            struct.pack_into("q", self._map, slot * 8, self.get(slot) + 1)


_shared_versions: Optional[SharedVersions] = None


def enable_shared_versions() -> None:
    """Call in a pre-fork server before workers start."""
    global _shared_versions
    if _shared_versions is None:
        _shared_versions = SharedVersions()


# -- backends -------------------------------------------------------------
class MemoryBackend:
    name = "memory"

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._data: OrderedDict[str, Tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._versions = dict.fromkeys(NAMESPACES, 0)

    def fetch(self, strategy: str, namespaces: Tuple[str, ...], key: str):
        full_key = _full_key(strategy, self.versions(namespaces), key)
        return full_key, self.get(full_key)

    def versions(self, namespaces: Iterable[str]) -> List[int]:
        if _shared_versions is not None:
            return [_shared_versions.get(NAMESPACES.index(ns)) for ns in namespaces]
        return [self._versions[ns] for ns in namespaces]

    def bump(self, namespaces: Iterable[str]) -> None:
        for ns in namespaces:
            if _shared_versions is not None:
                _shared_versions.bump(NAMESPACES.index(ns))
            else:
                with self._lock:
                    self._versions[ns] += 1

    def get(self, key: str) -> Optional[bytes]:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            expires, value = entry
            if expires < time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl: int) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_size:
                self._data.popitem(last=False)

    def ping(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._data)


# Reads the namespace versions and the entry they point at in one round trip.
_FETCH_LUA = """
local vkeys = {ARGV[1] .. 'ver:epoch'}
for i = 4, #ARGV do vkeys[#vkeys + 1] = ARGV[1] .. 'ver:' .. ARGV[i] end
local vals = redis.call('MGET', unpack(vkeys))
local parts = {}
for i = 1, #vkeys do
  local v = vals[i]
  if not v then v = '0' end
  parts[i] = v
end
local full = ARGV[1] .. ARGV[2] .. ':' .. table.concat(parts, '.') .. ':' .. ARGV[3]
return {full, redis.call('GET', full)}
"""


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, password: str = "") -> None:
        self.client = redis.Redis.from_url(
            url,
            password=password or None,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
            health_check_interval=30,
        )
        self._fetch = self.client.register_script(_FETCH_LUA)

    def fetch(self, strategy: str, namespaces: Tuple[str, ...], key: str):
        full_key, value = self._fetch(args=[PREFIX, strategy, key, *namespaces])
        return full_key.decode(), value

    def bump(self, namespaces: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for ns in namespaces:
            pipe.incr(PREFIX + "ver:" + ns)
        pipe.execute()

    def bump_epoch(self) -> None:
        self.client.incr(_EPOCH_KEY)

    def get(self, key: str) -> Optional[bytes]:
        return self.client.get(key)

    def set(self, key: str, value: bytes, ttl: int) -> None:
        self.client.set(key, value, ex=ttl)

    def ping(self) -> None:
        self.client.ping()


class _State:
    def __init__(self, backend, ttls: Dict[str, int], enabled: bool = True) -> None:
        self.backend = backend
        self.ttls = ttls
        self.enabled = enabled
        self.retry_at = 0.0
        self.epoch_stale = False
        self.lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        return self.retry_at > time.monotonic()


class Cache:
    """Flask extension; one instance per process, state per application."""

    def init_app(self, app: Flask) -> None:
        cfg = app.config["PROCUREMENT"]
        if cfg.redis_url:
            backend: Any = RedisBackend(cfg.redis_url, cfg.redis_password)
        else:
            backend = MemoryBackend(cfg.cache_max_size)
        app.extensions["procurement_cache"] = _State(backend, cfg.cache_ttls, cfg.cache_enabled)

    @staticmethod
    def _state() -> _State:
        return current_app.extensions["procurement_cache"]

    # -- failure handling -------------------------------------------------
    def _fail(self, state: _State, exc: Exception) -> None:
        with state.lock:
            first = not state.degraded
            state.retry_at = time.monotonic() + _RETRY_AFTER_SECONDS
            state.epoch_stale = True
        counters.CACHE_DEGRADED.set(1)
        if first:
            log.warning("cache backend failed, serving from the database: %s", exc)

    def _usable(self, state: _State) -> bool:
        if state.backend.name != "redis":
            return True
        if state.degraded:
            return False
        if state.epoch_stale:
            try:
                state.backend.bump_epoch()
            except redis.RedisError as exc:
                self._fail(state, exc)
                return False
            state.epoch_stale = False
            counters.CACHE_DEGRADED.set(0)
            log.info("cache backend is back; cached entries invalidated")
        return True

    # -- public API -------------------------------------------------------
    def get_or_set(
        self,
        strategy: str,
        namespaces: Tuple[str, ...],
        key: str,
        producer: Callable[[], Any],
    ) -> Any:
        """Return the cached value for key, computing and storing it on a miss."""
        state = self._state()
        if not state.enabled:
            counters.CACHE_REQUESTS.labels(strategy, "off").inc()
            return producer()
        if not self._usable(state):
            counters.CACHE_REQUESTS.labels(strategy, "bypass").inc()
            return producer()
        try:
            full_key, raw = state.backend.fetch(strategy, namespaces, key)
        except redis.RedisError as exc:
            self._fail(state, exc)
            counters.CACHE_REQUESTS.labels(strategy, "bypass").inc()
            return producer()
        if raw is not None:
            counters.CACHE_REQUESTS.labels(strategy, "hit").inc()
            return decode(raw)
        counters.CACHE_REQUESTS.labels(strategy, "miss").inc()
        value = producer()
        try:
            state.backend.set(
                full_key, encode(value), state.ttls.get(strategy, state.ttls["default"])
            )
        except redis.RedisError as exc:
            self._fail(state, exc)
        return value

    def bump(self, *namespaces: str) -> None:
        """Invalidate everything cached under the namespaces. Call after commit."""
        state = self._state()
        if not self._usable(state):
            return
        try:
            state.backend.bump(namespaces)
        except redis.RedisError as exc:
            self._fail(state, exc)

    def status(self) -> Dict[str, Any]:
        """Backend name and health, pinging Redis directly (used by readiness)."""
        state = self._state()
        result: Dict[str, Any] = {"backend": state.backend.name, "ok": True}
        try:
            state.backend.ping()
        except redis.RedisError as exc:
            self._fail(state, exc)
            result.update(ok=False, error=str(exc))
        else:
            if state.backend.name == "redis" and state.degraded:
                # Redis answers again; let the next use clear the degraded flag.
                state.retry_at = 0.0
                self._usable(state)
        return result

    def is_degraded(self) -> bool:
        state = self._state()
        return state.backend.name == "redis" and state.degraded


cache = Cache()
