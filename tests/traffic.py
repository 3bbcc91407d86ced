"""A steady stream of questions to the gateway while a test changes the system.

One sender thread posts one question after another, paced and bounded in count
and in time (traffic goes only to 127.0.0.1). Every request ends as a ``Sent``: an
exception (connection reset, unreadable body) is kept with status -1 and its
text, so a test that fails says what the stream saw instead of waiting on a
sender that died.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.system import post, wait_for


@dataclass(frozen=True)
class Sent:
    started: float  # time.monotonic() when the request was sent
    status: int  # HTTP status, or -1 when no response was read
    body: dict
    seconds: float

    @property
    def ended(self) -> float:
        return self.started + self.seconds


class Traffic:
    """``with Traffic(settings, lambda n: {...}) as traffic:`` streams until the block ends."""

    def __init__(self, settings, question: Callable[[int], dict], pause_s: float = 0.1,
                 max_requests: int = 3000, max_seconds: float = 900.0) -> None:
        self.settings = settings
        self.question = question
        self.pause_s = pause_s
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.outcomes: list[Sent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def _run(self) -> None:
        until = time.monotonic() + self.max_seconds
        n = 0
        while not self._stop.is_set() and n < self.max_requests and time.monotonic() < until:
            started = time.monotonic()
            try:
                status, body = post(self.settings, self.question(n))
            except (OSError, ValueError) as exc:
                status, body = -1, {"error": repr(exc)}
            self.outcomes.append(Sent(started, status, body, time.monotonic() - started))
            n += 1
            self._stop.wait(self.pause_s)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(300)

    def __len__(self) -> int:
        return len(self.outcomes)

    def more(self, count: int, what: str, timeout: float = 120.0) -> None:
        """Wait until ``count`` more requests have ended than have now."""
        target = len(self.outcomes) + count
        wait_for(lambda: len(self.outcomes) >= target, timeout=timeout, what=lambda: (
            f"{count} more responses {what}: {len(self.outcomes)} sent, sender running: "
            f"{self._thread.is_alive()}, last: "
            f"{repr(self.outcomes[-1])[:300] if self.outcomes else 'none'}"))
