"""Single-flight: one computation per key at a time, however many callers ask.

A caller :meth:`claim`\\ s a set of keys and gets back the ones it must compute
itself and futures for those someone else is already computing. It must then
:meth:`resolve` (or :meth:`fail`) every key it claimed; waiters wake with the
same result. The gateway path and the key-miss path share one table per worker.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from concurrent.futures import Future


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, Future] = {}

    def claim(self, keys: Iterable[Hashable]) -> tuple[list[Hashable], dict[Hashable, Future]]:
        """(keys now owned by the caller, futures of keys already in flight)."""
        mine: list[Hashable] = []
        theirs: dict[Hashable, Future] = {}
        with self._lock:
            for key in keys:
                if key in theirs or key in mine:
                    continue
                flight = self._flights.get(key)
                if flight is None:
                    self._flights[key] = Future()
                    mine.append(key)
                else:
                    theirs[key] = flight
        return mine, theirs

    def in_flight(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._flights

    def resolve(self, key: Hashable, value: object) -> None:
        with self._lock:
            flight = self._flights.pop(key)
        flight.set_result(value)

    def fail(self, key: Hashable, exc: BaseException) -> None:
        with self._lock:
            flight = self._flights.pop(key, None)
        if flight is not None:
            flight.set_exception(exc)
