"""When to try again, as data: the delivery schedule, submission backoff and the poll policy."""

from __future__ import annotations

import random
from dataclasses import dataclass

RETRY_AFTER_CAP = 3600.0
ESTIMATE_MARGIN = 0.1
ESTIMATE_SLACK = 0.05
PROGRESS_ROUNDING = 0.5
# A predicted finish earns a longer gap than blind backoff: the poll in between would only
# confirm that the job is still running (bench/polling.py).
ESTIMATE_CAP_FACTOR = 2.0


def _jittered(delay: float, jitter: float) -> float:
    return delay * random.uniform(1 - jitter, 1 + jitter)


@dataclass(frozen=True)
class DeliverySchedule:
    """Delays after each failed attempt; len(delays) + 1 attempts in all."""

    delays: tuple[float, ...]
    jitter: float = 0.1

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds until the next attempt, or None when the last one has been made. A receiver's
        Retry-After can push the next attempt later than the schedule, never sooner, and never
        by more than an hour."""
        if attempts_made > len(self.delays):
            return None
        delay = _jittered(self.delays[attempts_made - 1], self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
        return delay


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter for provider calls that failed transiently."""

    first: float = 1.0
    cap: float = 300.0
    jitter: float = 0.2

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        delay = _jittered(min(self.cap, self.first * 2 ** max(failures - 1, 0)), self.jitter)
        return max(delay, min(retry_after or 0.0, RETRY_AFTER_CAP))


@dataclass(frozen=True)
class PollPolicy:
    """When to poll a running job next.

    Without a hint, polls back off geometrically from `minimum` to `maximum`. When the provider
    reports an ETA, or progress from which one follows (elapsed × remaining / done), the next poll
    goes to the predicted finish instead, never later than twice `maximum` from now: few polls for
    long jobs, little lag at the end.
    """

    minimum: float = 2.0
    maximum: float = 60.0
    growth: float = 1.6
    jitter: float = 0.1

    def first_delay(self) -> float:
        return _jittered(self.minimum, self.jitter)

    def next_delay(
        self,
        polls_made: int,
        elapsed: float,
        progress: int | None = None,
        eta: float | None = None,
        retry_after: float | None = None,
    ) -> float:
        estimate = eta
        if estimate is None and progress and 0 < progress < 100 and elapsed > 0:
            # Progress arrives in whole percent, so the job may be half a point further along
            # than it says: estimate its earliest finish, or a poll planned early in a job
            # overshoots by the rounding (up to 10 % of the job at 5 % done).
            ahead = progress + PROGRESS_ROUNDING
            estimate = elapsed * (100 - ahead) / ahead
        if estimate is not None:
            # A little after the predicted finish: estimates err both ways, and a poll that comes
            # early costs a second one; a few percent of lag saves it (bench/polling.py).
            delay = estimate * (1 + ESTIMATE_SLACK) + ESTIMATE_MARGIN
            cap = self.maximum * ESTIMATE_CAP_FACTOR
        else:
            delay = _jittered(self.minimum * self.growth**polls_made, self.jitter)
            cap = self.maximum
        delay = min(max(delay, self.minimum / 4), cap)
        return max(delay, min(retry_after or 0.0, RETRY_AFTER_CAP))
