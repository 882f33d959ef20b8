"""Fault injection for the local servers, set per test: errors at a rate, resets, truncation, flipped bytes,
latency. Rules match on HTTP method, operation name and key glob, and can fire a limited number of times."""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass, field

KINDS = ("status", "reset", "truncate", "flip", "latency", "reset_request", "flip_request")


@dataclass
class FaultRule:
    """One fault.

    :param kind: ``status`` (answer ``status``/``code`` instead of serving), ``reset`` (close the connection
        half-way through the response body), ``reset_request`` (close half-way through reading the request
        body), ``truncate`` (announce the full length, send half, close), ``flip`` (flip one byte of the response
        body), ``flip_request`` (flip one byte of the request body as it arrives, as a bad network would),
        ``latency`` (sleep ``latency`` seconds first).
    :param rate: probability of firing for each matching request.
    :param times: fire at most this many times (None: no limit).
    :param method: HTTP method to match (None: any).
    :param operation: operation name to match, e.g. ``GetObject``, ``UploadPart`` (None: any).
    :param key: fnmatch glob on the object key (None: any).
    """

    kind: str
    rate: float = 1.0
    times: int | None = None
    method: str | None = None
    operation: str | None = None
    key: str | None = None
    status: int = 503
    code: str = "SlowDown"
    latency: float = 0.0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: use one of {', '.join(KINDS)}")


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, kind: str, **kwargs: object) -> FaultRule:
        rule = FaultRule(kind, **kwargs)  # type: ignore[arg-type]
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def pick(self, kinds: tuple[str, ...], method: str, operation: str, key: str) -> FaultRule | None:
        """The first matching rule of one of ``kinds`` that fires now (counted), or None."""
        with self._lock:
            for rule in self.rules:
                if rule.kind not in kinds:
                    continue
                if rule.method and rule.method != method:
                    continue
                if rule.operation and rule.operation != operation:
                    continue
                if rule.key is not None and not fnmatch.fnmatchcase(key, rule.key):
                    continue
                if rule.times is not None and rule.fired >= rule.times:
                    continue
                if self._random.random() >= rule.rate:
                    continue
                rule.fired += 1
                return rule
        return None
