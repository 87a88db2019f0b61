"""Retry and poll policies are data: what they decide for given inputs."""

from __future__ import annotations

import itertools
import random

import pytest

from service.retry import (
    ESTIMATE_CAP_FACTOR,
    ESTIMATE_MARGIN,
    ESTIMATE_SLACK,
    RETRY_AFTER_CAP,
    Backoff,
    DeliverySchedule,
    PollPolicy,
)


def test_delivery_schedule_has_one_attempt_more_than_delays():
    schedule = DeliverySchedule((5, 300, 1800))
    assert schedule.attempts == 4
    assert schedule.next_delay(3) is not None
    assert schedule.next_delay(4) is None


def test_delivery_delays_are_jittered_within_ten_percent():
    schedule = DeliverySchedule((100.0,))
    delays = {schedule.next_delay(1) for _ in range(200)}
    assert len(delays) > 1
    assert all(90.0 <= delay <= 110.0 for delay in delays)


def test_retry_after_delays_but_never_hastens_and_is_capped():
    schedule = DeliverySchedule((100.0, 100.0), jitter=0)
    assert schedule.next_delay(1, retry_after=1) == 100.0
    assert schedule.next_delay(1, retry_after=500) == 500.0
    assert schedule.next_delay(1, retry_after=10**9) == RETRY_AFTER_CAP


def test_backoff_doubles_to_a_cap_and_honours_retry_after():
    backoff = Backoff(first=1, cap=8, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert backoff.delay(1, retry_after=30) == 30


def test_poll_backoff_grows_short_first_to_a_cap_with_jitter():
    random.seed(7)
    policy = PollPolicy(minimum=2, maximum=60, growth=1.6, jitter=0.1)
    delays = [policy.next_delay(n, elapsed=0) for n in range(12)]
    assert 1.8 <= delays[0] <= 2.2
    assert all(later >= earlier * 1.2 for earlier, later in itertools.pairwise(delays[:6]))
    assert delays[-1] == 60


def test_poll_goes_to_the_predicted_finish_from_progress_or_eta():
    policy = PollPolicy(minimum=2, maximum=60)
    # "25 %" after 10 s may be 25.5 %: at the earliest 10 × 74.5 / 25.5 s to go.
    late = 1 + ESTIMATE_SLACK
    assert policy.next_delay(3, elapsed=10, progress=25) == pytest.approx(
        10 * 74.5 / 25.5 * late + ESTIMATE_MARGIN
    )
    assert policy.next_delay(3, elapsed=10, eta=7) == pytest.approx(7 * late + ESTIMATE_MARGIN)
    # A far finish is checked on the way, at twice the blind cap.
    assert policy.next_delay(3, elapsed=10, eta=10_000) == 60 * ESTIMATE_CAP_FACTOR
    assert policy.next_delay(0, elapsed=1, progress=50, retry_after=90) == 90
