"""The worker: submits and polls jobs, applies received webhooks and dispatches deliveries until
told to stop; then it lets in-flight work finish (bounded by the drain timeout) and gives back
every claim it still holds, so no work stays claimed by a process that has gone. One that dies
without stopping is noticed by its missing heartbeat (service/heartbeat.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.context import Context
from service.dispatcher import Dispatcher
from service.heartbeat import Heartbeat
from service.jobs import JobEngine
from storage.base import CHANNELS
from storage.records import InboundWebhook, Job

log = logging.getLogger("videohooks.worker")

JOB_BATCH = 64
WEBHOOK_BATCH = 200
WEBHOOK_LEASE = 60.0
CRASH_RETRY = 30.0
DEFER_WEBHOOK = 1.0
EXPIRE_BATCH = 1000


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    def __init__(self, context: Context, worker_id: str | None = None) -> None:
        self.context = context
        self.store = context.store
        self.id = worker_id or new_worker_id()
        self.stopping = asyncio.Event()
        self.engine = JobEngine(context, self.id)
        self.provider_limit = context.settings.provider_concurrency
        self.provider_slots: dict[str, asyncio.Semaphore] = {}
        self.provider_claimed: dict[str, int] = {}
        self.job_tasks: set[asyncio.Task[None]] = set()
        # A job claim covers a wait for a provider slot and the provider call itself.
        self.job_lease = context.settings.provider_timeout * 2 + 60.0

    def stop(self) -> None:
        self.stopping.set()
        for channel in CHANNELS:
            self.store.notify(channel)

    async def run(self) -> None:
        log.info("worker started", extra={"worker_id": self.id})
        dispatcher = Dispatcher(self.context, self.id)
        heartbeat = Heartbeat(self.store, self.id)
        # Before claiming anything: what a dead predecessor held is free at once.
        await self._guarded(heartbeat.beat())
        try:
            await asyncio.gather(
                self._loop("jobs", self._claim_jobs, self._until_next_job),
                self._loop("webhooks", self._process_webhooks),
                dispatcher.run(self.stopping),
                self._expire_old_records(),
                heartbeat.run(self.stopping),
            )
        finally:
            await self._drain_jobs()
            await self.store.release_claims(self.id)
            log.info("worker stopped", extra={"worker_id": self.id})

    async def _loop(
        self,
        channel: str,
        step: Callable[[], Awaitable[int]],
        until_due: Callable[[], Awaitable[float]] | None = None,
    ) -> None:
        idle = self.context.settings.idle_poll
        while not self.stopping.is_set():
            try:
                found = await step()
                wait = idle if until_due is None else min(idle, await until_due())
            except Exception:
                log.exception("worker step failed", extra={"loop": channel})
                found, wait = 0, idle
            if not found:
                await self.store.wait(channel, wait)

    # -- jobs -------------------------------------------------------------------------------

    async def _claim_jobs(self) -> int:
        room = JOB_BATCH - len(self.job_tasks)
        if room <= 0:
            return 0
        full = {
            name for name, count in self.provider_claimed.items() if count >= self.provider_limit
        }
        jobs = await self.store.claim_jobs(self.id, time.time(), room, self.job_lease, full)
        for job in jobs:
            self.provider_claimed[job.provider] = self.provider_claimed.get(job.provider, 0) + 1
            task = asyncio.create_task(self._run_job(job))
            self.job_tasks.add(task)
            task.add_done_callback(self.job_tasks.discard)
        return len(jobs)

    async def _until_next_job(self) -> float:
        """Seconds until the next scheduled submission or poll: the loop sleeps that long, not a
        whole idle poll, so a poll happens when it is due."""
        due = await self.store.next_job_due()
        return 3600.0 if due is None else max(0.001, due - time.time())

    async def _run_job(self, job: Job) -> None:
        slots = self.provider_slots.setdefault(job.provider, asyncio.Semaphore(self.provider_limit))
        try:
            async with slots:
                await self.engine.handle(job)
        except Exception:
            log.exception("job step failed", extra={"job_id": job.id})
            await self._guarded(
                self.store.reschedule_job(
                    job.id, self.id, time.time() + CRASH_RETRY, job.check_count + 1
                )
            )
        finally:
            self.provider_claimed[job.provider] -= 1
            self.store.notify("jobs")

    async def _drain_jobs(self) -> None:
        if self.job_tasks:
            await asyncio.wait(self.job_tasks, timeout=self.context.settings.drain_timeout)
        for task in self.job_tasks:
            task.cancel()
        await asyncio.gather(*self.job_tasks, return_exceptions=True)

    # -- received webhooks ------------------------------------------------------------------

    async def _process_webhooks(self) -> int:
        now = time.time()
        hooks = await self.store.claim_webhooks(self.id, now, WEBHOOK_BATCH, WEBHOOK_LEASE)
        if not hooks:
            return 0
        outcomes = await asyncio.gather(*(self._process(hook) for hook in hooks))
        done = [hook.id for hook, outcome in zip(hooks, outcomes, strict=True) if outcome is True]
        await self.store.finish_webhooks(done, time.time())
        for hook, outcome in zip(hooks, outcomes, strict=True):
            if outcome is False:
                await self.store.defer_webhook(hook.id, time.time() + DEFER_WEBHOOK)
        return len(hooks)

    async def _process(self, hook: InboundWebhook) -> bool | None:
        """True when done, False to retry shortly, None after a crash (retried after the lease)."""
        try:
            return await self.engine.process_webhook(hook)
        except Exception:
            log.exception("webhook processing failed", extra={"job_id": hook.job_id})
            return None

    # -- retention --------------------------------------------------------------------------

    async def _expire_old_records(self) -> None:
        """Removes events, deliveries, attempts and processed webhooks older than the retention,
        in bounded batches so that the writer is never held long; jobs keep their final state."""
        settings = self.context.settings
        while not self.stopping.is_set():
            removed = 0
            try:
                while not self.stopping.is_set():
                    batch = await self.store.expire(time.time() - settings.retention, EXPIRE_BATCH)
                    removed += batch
                    if batch < EXPIRE_BATCH:
                        break
                    await asyncio.sleep(0.05)
            except Exception:
                log.exception("retention cleanup failed")
            if removed:
                log.info("expired old records", extra={"removed": removed})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), settings.cleanup_interval)

    async def _guarded(self, operation: Awaitable[Any]) -> None:
        try:
            await operation
        except Exception:
            log.exception("store operation failed")
