"""The delivery hot path: claim due deliveries in batches, sign them, POST them concurrently, and
record their outcomes in batches, so the database sees one round trip per batch, not per delivery.

aiohttp is the client here by measurement (bench/fanout.py): on this kind of machine it sends
several times more POSTs per second than httpx to the same local receiver. Its resolver hook is
where the SSRF guard checks the addresses actually dialled.

Isolation: the claim takes at most a subscription's max_in_flight (default
VIDEOHOOKS_SUBSCRIPTION_CONCURRENCY) per subscription or callback URL across all workers, so a
receiver that hangs holds that many slots and no more; a subscription's rate limit (deliveries/s)
is a token bucket in the database that every worker shares, and a delivery that would wait too
long for a token goes back to the queue for later without counting as an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from service import metrics
from service.context import Context
from service.delivery import Outcome
from service.models import MIN_RATE_LIMIT
from service.retry import DeliverySchedule
from storage.records import AttemptResult, DeliveryTask

log = logging.getLogger("videohooks.dispatcher")

CLAIM_BATCH = 500


class Dispatcher:
    def __init__(self, context: Context, worker_id: str) -> None:
        settings = context.settings
        self.store = context.store
        self.sender = context.sender
        self.callback_secrets = context.callback_secrets
        self.worker_id = worker_id
        self.schedule = DeliverySchedule(settings.retry_schedule)
        self.capacity = settings.delivery_concurrency
        # Claim only once this many slots are free: slots that free up one by one would
        # otherwise cost a claim transaction per delivery.
        self.min_claim = max(1, self.capacity // 4)
        self.target_cap = settings.subscription_concurrency
        self.disable_after = settings.disable_after
        self.idle_poll = settings.idle_poll
        self.drain_timeout = settings.drain_timeout
        # A claim outlives the longest attempt and the recording of its outcome with room to
        # spare; a worker killed mid-attempt holds its deliveries no longer than this.
        self.lease = settings.delivery_timeout * 2 + 5.0
        self.in_flight: set[asyncio.Task[None]] = set()
        self.results: list[AttemptResult] = []
        self.slot_free = asyncio.Event()
        self.results_ready = asyncio.Event()
        self.closing = False

    async def run(self, stopping: asyncio.Event) -> None:
        recorder = asyncio.create_task(self._record_loop())
        try:
            while not stopping.is_set():
                free = self.capacity - len(self.in_flight)
                if free < self.min_claim:
                    self.slot_free.clear()
                    await self.slot_free.wait()
                    continue
                wanted = min(free, CLAIM_BATCH)
                claimed = await self.store.claim_deliveries(
                    self.worker_id, time.time(), wanted, self.lease, self.target_cap
                )
                callback_secrets = await self.callback_secrets.load() if claimed else []
                for task, wait in await self._pace(claimed):
                    self._spawn(task, task.secrets or callback_secrets, wait)
                if len(claimed) < wanted:
                    # Nothing more is due (or every due target is at its cap) until something
                    # is recorded or created, which wakes this loop.
                    await self.store.wait("deliveries", self.idle_poll)
        finally:
            await self._drain(recorder)

    async def _drain(self, recorder: asyncio.Task[None]) -> None:
        if self.in_flight:
            log.info("draining deliveries", extra={"in_flight": len(self.in_flight)})
            await asyncio.wait(self.in_flight, timeout=self.drain_timeout)
        for task in self.in_flight:
            task.cancel()  # their claims are released by the worker
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        self.closing = True
        self.results_ready.set()
        await recorder

    async def _pace(self, claimed: list[DeliveryTask]) -> list[tuple[DeliveryTask, float]]:
        """The claimed deliveries to send, each with the seconds it waits for its subscription's
        rate limit; one statement per rate-limited subscription takes the tokens of all its
        deliveries."""
        paced: list[tuple[DeliveryTask, float]] = []
        limited: dict[tuple[str, float], list[DeliveryTask]] = {}
        for task in claimed:
            if task.rate_limit and task.subscription_id:
                # A rate saved before the API refused tiny ones must not make 1/rate infinite.
                rate = max(task.rate_limit, MIN_RATE_LIMIT)
                limited.setdefault((task.subscription_id, rate), []).append(task)
            else:
                paced.append((task, 0.0))
        for (subscription_id, rate), tasks in limited.items():
            paced += await self._take_tokens(subscription_id, rate, tasks)
        return paced

    async def _take_tokens(
        self, subscription_id: str, rate: float, tasks: list[DeliveryTask]
    ) -> list[tuple[DeliveryTask, float]]:
        """Deliveries that would wait too long for a token go back to the queue with their
        tokens, recorded as deferred, not as attempts; the others are returned with their wait."""
        now = time.time()
        try:
            waits = await self.store.take_rate_tokens(subscription_id, rate, len(tasks), now)
            # Waits grow along the list, so the ones too late are its tail.
            on_time = sum(1 for wait in waits if wait <= self.lease / 4)
            if on_time < len(tasks):
                await self.store.give_back_rate_tokens(subscription_id, rate, len(tasks) - on_time)
        except Exception:
            log.exception("rate limit unavailable", extra={"subscription_id": subscription_id})
            waits, on_time = [1.0] * len(tasks), 0
        for task, wait in zip(tasks[on_time:], waits[on_time:], strict=True):
            self._record(task, None, deferred_until=now + wait)
        return list(zip(tasks[:on_time], waits[:on_time], strict=True))

    def _spawn(self, task: DeliveryTask, secrets: list[str], wait: float) -> None:
        sending = asyncio.create_task(self._deliver(task, secrets, wait))
        self.in_flight.add(sending)
        sending.add_done_callback(self._sent)

    def _sent(self, sending: asyncio.Task[None]) -> None:
        self.in_flight.discard(sending)
        self.slot_free.set()

    async def _deliver(self, task: DeliveryTask, secrets: list[str], wait: float) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        attempted_at = time.time()
        try:
            outcome = await self.sender.attempt(task.url, task.event_id, task.body, secrets)
        except Exception as exc:
            log.exception("delivery attempt crashed", extra={"delivery_id": task.id})
            outcome = Outcome(None, 0.0, f"internal error: {type(exc).__name__}", "internal")
        self._record(task, outcome, attempted_at=attempted_at)

    def _record(
        self,
        task: DeliveryTask,
        outcome: Outcome | None,
        attempted_at: float = 0.0,
        deferred_until: float | None = None,
    ) -> None:
        if outcome is None:
            result = AttemptResult(
                task.seq, task.subscription_id, time.time(), 0.0, "deferred", deferred_until, None
            )
        else:
            result = self._result(task, outcome, attempted_at)
        self.results.append(result)
        self.results_ready.set()

    def _result(self, task: DeliveryTask, outcome: Outcome, attempted_at: float) -> AttemptResult:
        result = AttemptResult(
            seq=task.seq,
            subscription_id=task.subscription_id,
            attempted_at=attempted_at,
            duration_ms=outcome.duration_ms,
            status="succeeded",
            next_attempt_at=None,
            status_code=outcome.status_code,
            error=outcome.error,
            error_class=outcome.error_class,
            response_body=outcome.response_body,
        )
        if outcome.succeeded:
            return result
        delay = (
            None
            if outcome.gone
            else self.schedule.next_delay(task.attempt_count + 1, outcome.retry_after)
        )
        result.status = "failed" if delay is None else "pending"
        result.next_attempt_at = None if delay is None else attempted_at + delay
        if outcome.gone and task.subscription_id:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(attempted_at))
            result.disable_reason = f"the receiver answered 410 Gone at {when}"
        return result

    async def _record_loop(self) -> None:
        # Results that arrive while one batch is being written form the next batch, so batches
        # grow with load and a lone result is written at once.
        while True:
            await self.results_ready.wait()
            self.results_ready.clear()
            await self._flush()
            if self.closing and not self.results:
                return

    async def _flush(self) -> None:
        batch, self.results = self.results, []
        if not batch:
            return
        _count(batch)
        try:
            await self.store.record_attempts(self.worker_id, batch, self.disable_after)
        except Exception:
            # Not lost: the claims lapse and the deliveries are sent again (at least once).
            log.exception("could not record delivery attempts", extra={"count": len(batch)})


def _count(batch: list[AttemptResult]) -> None:
    """Metrics per recorded batch: one counter increment per outcome and subscription, not one
    per delivery (under --processes each increment is a locked write to a shared file)."""
    counts: Counter[tuple[str, str]] = Counter()
    for result in batch:
        if result.status != "deferred":
            metrics.ATTEMPT_SECONDS.observe(result.duration_ms / 1000)
        outcome = "retrying" if result.status == "pending" else result.status
        counts[outcome, result.subscription_id or "callback"] += 1
    for (outcome, subscription), count in counts.items():
        metrics.DELIVERIES.labels(outcome, subscription).inc(count)
