"""The store's behaviour, the same for every backend: state machine rules, leases, the outbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter

import pytest

from storage import open_store, sql
from storage.ids import new_id
from storage.records import (
    ApiKey,
    AttemptResult,
    Event,
    Job,
    JobFinal,
    JobProgress,
    NewDelivery,
    Subscription,
)
from tests.support.databases import BACKENDS

pytestmark = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


DISABLE_AFTER = 5 * 86400


def a_job(**changes) -> Job:
    now = time.time()
    fields = dict(
        id=new_id("vid"),
        status="queued",
        model="simulator/default",
        provider="simulator",
        request={"model": "simulator/default"},
        attempts=[
            {
                "provider": "simulator",
                "model": "simulator/default",
                "provider_job_id": None,
                "error": None,
            }
        ],
        created_at=now,
        updated_at=now,
        deadline_at=now + 3600,
        next_check_at=now,
    )
    return Job(**(fields | changes))


def an_event(job: Job) -> Event:
    event_id = new_id("evt")
    return Event(
        id=event_id,
        type="video.completed",
        job_id=job.id,
        payload=json.dumps({"id": event_id}),
        created_at=time.time(),
    )


def final(status: str = "completed") -> JobFinal:
    return JobFinal(
        status=status, progress=100, outputs=[], error=None, attempts=[], completed_at=time.time()
    )


def to(url: str):
    return lambda subscriptions: [NewDelivery(subscription_id=None, url=url)]


async def test_migrate_is_idempotent_and_versioned(store):
    await store.migrate()
    await store.migrate()
    assert await store.schema_version() == max(m.version for m in sql.migrations("sqlite"))
    assert [m.version for m in sql.migrations("postgres")] == [
        m.version for m in sql.migrations("sqlite")
    ]


async def test_meta_keeps_the_first_value(store):
    assert await store.meta_get_or_set("k", "a") == "a"
    assert await store.meta_get_or_set("k", "b") == "a"


def an_api_key(name: str | None = None, created_at: float = 1.0) -> ApiKey:
    key_id = new_id("key")
    return ApiKey(
        id=key_id, hash=f"hash-{key_id}", name=name, prefix="vhk_abcd", created_at=created_at
    )


async def test_first_api_key_is_stored_once(store):
    first, second = an_api_key(), an_api_key()
    assert await store.add_first_api_key(first)
    assert not await store.add_first_api_key(second)
    assert await store.api_key_known(first.hash) and not await store.api_key_known(second.hash)


async def test_api_keys_are_listed_touched_at_most_once_a_minute_and_revoked(store):
    ci, other = an_api_key("ci"), an_api_key(created_at=2.0)
    await store.add_api_key(ci)
    await store.add_api_key(other)
    assert await store.list_api_keys() == [ci, other]
    await store.touch_api_key(ci.hash, 100.0, 40.0)
    await store.touch_api_key(ci.hash, 130.0, 70.0)  # used at 100, later than 70: not again
    [listed, _] = await store.list_api_keys()
    assert listed.last_used_at == 100.0
    await store.touch_api_key(ci.hash, 170.0, 110.0)
    assert (await store.list_api_keys())[0].last_used_at == 170.0
    assert await store.revoke_api_key(ci.id, 200.0)
    assert not await store.revoke_api_key(ci.id, 201.0)
    assert not await store.revoke_api_key("key_unknown", 201.0)
    assert not await store.api_key_known(ci.hash) and await store.api_key_known(other.hash)
    assert [(key.id, key.revoked_at) for key in await store.list_api_keys()] == [
        (ci.id, 200.0),
        (other.id, None),
    ]


async def test_idempotency_key_clash_returns_the_existing_job(store):
    first, created = await store.create_job(a_job(idempotency_key="k", request_hash="x"))
    assert created
    again, created = await store.create_job(a_job(idempotency_key="k", request_hash="y"))
    assert not created and again.id == first.id and again.request_hash == "x"


async def test_claims_hold_until_the_lease_lapses(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    assert [j.id for j in await store.claim_jobs("w1", now, 10, 30, ())] == [job.id]
    assert await store.claim_jobs("w2", now + 1, 10, 30, ()) == []
    assert [j.id for j in await store.claim_jobs("w2", now + 31, 10, 30, ())] == [job.id]
    # w1 lost the claim: its writes are ignored.
    assert not await store.reschedule_job(job.id, "w1", now + 5, 1)
    assert await store.reschedule_job(job.id, "w2", now + 5, 1)


async def test_claims_skip_saturated_providers(store):
    await store.create_job(a_job(provider="nanogpt"))
    await store.create_job(a_job())
    claimed = await store.claim_jobs("w", time.time(), 10, 30, {"nanogpt"})
    assert [job.provider for job in claimed] == ["simulator"]


async def test_status_only_moves_forward_and_progress_only_up(store):
    job, _ = await store.create_job(a_job(provider_job_id="p1"))
    now = time.time()
    await store.record_progress(job.id, 0, JobProgress("in_progress", 40), now)
    await store.record_progress(job.id, 0, JobProgress("queued", 10), now)
    stored = await store.get_job(job.id)
    assert (stored.status, stored.progress) == ("in_progress", 40)


async def test_exactly_one_terminal_transition_under_concurrency(store):
    job, _ = await store.create_job(a_job(provider_job_id="p1"))
    results = await asyncio.gather(
        *(store.finish_job(job.id, 0, final(), an_event(job), to("http://x")) for _ in range(20))
    )
    assert results.count(True) == 1
    page = await store.list_events(None, 100, None)
    assert len(page.items) == 1
    assert len((await store.list_deliveries(event_id=page.items[0].id)).items) == 1
    # A terminal job never changes again.
    assert not await store.record_progress(job.id, 0, JobProgress("in_progress", 5), time.time())
    assert not await store.finish_job(job.id, 0, final("failed"), an_event(job), to("http://x"))
    assert (await store.get_job(job.id)).status == "completed"


async def test_the_terminal_transition_is_atomic(store):
    job, _ = await store.create_job(a_job())

    def broken_router(subscriptions):
        raise RuntimeError("crash while routing")

    with pytest.raises(RuntimeError):
        await store.finish_job(job.id, 0, final(), an_event(job), broken_router)
    assert (await store.get_job(job.id)).status == "queued"
    assert (await store.list_events(None, 10, None)).items == []


async def test_switch_attempt_is_conditional_on_the_attempt(store):
    job, _ = await store.create_job(a_job(provider_job_id="p1"))
    attempts = [*job.attempts, {"provider": "nanogpt", "model": "nanogpt/x"}]
    assert await store.switch_attempt(job.id, 0, "nanogpt/x", "nanogpt", attempts, time.time())
    assert not await store.switch_attempt(job.id, 0, "nanogpt/y", "nanogpt", attempts, time.time())
    stored = await store.get_job(job.id)
    assert (stored.attempt_no, stored.provider, stored.provider_job_id) == (1, "nanogpt", None)
    # A report for the old attempt is ignored.
    assert not await store.finish_job(job.id, 0, final(), an_event(job), to("http://x"))


async def test_a_submission_is_recorded_as_under_way_before_the_provider_is_called(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    assert not await store.begin_submission(job, "w1", now)  # only the claim holder
    [claimed] = await store.claim_jobs("w1", now, 10, 30, ())
    assert await store.begin_submission(claimed, "w1", now)
    # The worker died here: whoever takes the job next finds the submission unresolved.
    [retaken] = await store.claim_jobs("w2", now + 31, 10, 30, ())
    assert retaken.submission_unresolved
    assert (retaken.submission_state, retaken.submission_attempt) == ("sending", 0)
    assert retaken.submission_started_at == pytest.approx(now)
    assert await store.submission_unanswered(retaken, "w2", True, now + 40, 1)
    assert (await store.get_job(job.id)).submission_state == "uncertain"
    [again] = await store.claim_jobs("w3", now + 41, 10, 30, ())
    # A send that certainly never arrived clears it.
    assert await store.submission_unanswered(again, "w3", False, now + 50, 2)
    assert not (await store.get_job(job.id)).submission_unresolved


async def test_a_submission_is_recorded_once_by_whoever_finds_its_provider_job(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    [claimed] = await store.claim_jobs("w1", now, 10, 30, ())
    await store.begin_submission(claimed, "w1", now)
    [retaken] = await store.claim_jobs("w2", now + 31, 10, 30, ())  # w1's lease lapsed
    progress = JobProgress("queued", None, "p1")
    # w1's answer comes late: recorded although w2 holds the job, whose claim stays w2's.
    assert await store.record_submission(claimed, "w1", progress, [], now, now + 5)
    stored = await store.get_job(job.id)
    assert (stored.provider_job_id, stored.submission_state, stored.claimed_by) == (
        "p1",
        None,
        "w2",
    )
    # The same provider job again is harmless; another one is refused.
    assert await store.record_submission(retaken, "w2", progress, [], now, now + 5)
    other = JobProgress("queued", None, "p2")
    assert not await store.record_submission(retaken, "w2", other, [], now, now + 5)
    assert (await store.get_job(job.id)).provider_job_id == "p1"


async def test_giving_up_on_an_uncertain_submission_loses_to_an_adopted_provider_job(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    [claimed] = await store.claim_jobs("w", now, 10, 30, ())
    await store.begin_submission(claimed, "w", now)
    given_up = dataclasses.replace(final("failed"), unsubmitted=True)
    # A webhook adopted the provider's job meanwhile: giving up no longer applies.
    await store.record_submission(claimed, "hooks", JobProgress("queued", None, "p1"), [], now, now)
    assert not await store.finish_job(job.id, 0, given_up, an_event(job), to("http://x"))
    assert (await store.get_job(job.id)).status == "queued"
    other, _ = await store.create_job(a_job())
    assert await store.finish_job(other.id, 0, given_up, an_event(other), to("http://x"))


async def test_switching_to_a_fallback_leaves_no_submission_under_way(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    [claimed] = await store.claim_jobs("w", now, 10, 30, ())
    await store.begin_submission(claimed, "w", now)
    assert await store.switch_attempt(job.id, 0, "nanogpt/x", "nanogpt", [], now)
    assert not (await store.get_job(job.id)).submission_unresolved


async def test_the_claims_of_a_silent_or_dead_worker_are_given_back(store):
    now = time.time()
    await store.heartbeat("silent", "host-a", 101, now - 60)
    await store.heartbeat("dead", "host-b", 102, now)
    await store.heartbeat("alive", "host-b", 103, now)
    held = {}
    for worker in ("silent", "dead", "alive"):
        job, _ = await store.create_job(a_job(next_check_at=now))
        await store.claim_jobs(worker, now, 1, 600, ())
        held[worker] = job.id
    assert sorted(await store.workers_on_host("host-b")) == [("alive", 103), ("dead", 102)]
    assert await store.reap_workers(now - 30, ["dead"]) == ["dead", "silent"]
    retaken = {job.id for job in await store.claim_jobs("other", now, 10, 600, ())}
    assert retaken == {held["silent"], held["dead"]}
    assert await store.workers_on_host("host-a") == []
    # A worker that stops gives back its claims and is forgotten.
    await store.release_claims("alive")
    assert [job.id for job in await store.claim_jobs("other", now, 10, 600, ())] == [held["alive"]]
    assert await store.workers_on_host("host-b") == []


async def an_old_event(store, at: float, status: str, subscription_id: str | None = None):
    """A finished job whose event was created at `at`, with one delivery of `status`."""
    job, _ = await store.create_job(a_job())
    event = an_event(job).model_copy(update={"created_at": at})

    def route(subscriptions):
        return [NewDelivery(subscription_id, "http://a", status)]

    assert await store.finish_job(job.id, 0, final(), event, route)
    return event


async def test_recover_queues_only_what_was_created_in_its_window(store):
    now = time.time()
    subscription = Subscription(
        id=new_id("sub"),
        url="http://a",
        events=["video.completed"],
        secret="whsec_x",
        created_at=now,
        updated_at=now,
    )
    await store.create_subscription(subscription)
    for at in (now - 300, now - 200, now - 100):
        await an_old_event(store, at, "skipped", subscription.id)
    assert await store.recover(subscription.id, now - 250, now - 150, now, 100) == 1
    pending = (await store.list_deliveries(status="pending")).items
    assert [delivery.created_at for delivery in pending] == [pytest.approx(now - 200)]


async def test_retention_never_removes_an_event_with_a_pending_delivery(store):
    now = time.time()
    waiting = await an_old_event(store, now - 1000, "pending")
    done = await an_old_event(store, now - 1000, "skipped")
    recent = await an_old_event(store, now - 10, "skipped")
    await store.expire(now - 500, 100)
    assert await store.get_event(waiting.id) is not None
    assert await store.get_event(done.id) is None
    assert await store.get_event(recent.id) is not None
    assert [d.event_id for d in (await store.list_deliveries()).items] == [recent.id, waiting.id]


async def test_router_sees_subscriptions_and_skipped_deliveries_are_not_due(store):
    now = time.time()
    for status in ("active", "disabled"):
        await store.create_subscription(
            Subscription(
                id=new_id("sub"),
                url=f"http://{status}",
                events=["video.completed"],
                status=status,
                secret="whsec_x",
                created_at=now,
                updated_at=now,
            )
        )
    job, _ = await store.create_job(a_job())

    def route(subscriptions):
        return [
            NewDelivery(s.id, s.url, "pending" if s.status == "active" else "skipped")
            for s in subscriptions
        ]

    event = an_event(job)
    assert await store.finish_job(job.id, 0, final(), event, route)
    statuses = sorted(d.status for d in (await store.list_deliveries(event_id=event.id)).items)
    assert statuses == ["pending", "skipped"]
    claimed = await store.claim_deliveries("w", time.time() + 1, 10, 30, 10)
    assert [task.url for task in claimed] == ["http://active"]
    assert claimed[0].secrets == ["whsec_x"] and json.loads(claimed[0].body) == {"id": event.id}


async def test_deliveries_are_claimed_under_lease_and_recorded(store):
    job, _ = await store.create_job(a_job())
    event = an_event(job)
    await store.finish_job(job.id, 0, final(), event, to("http://a"))
    now = time.time() + 1
    [task] = await store.claim_deliveries("w1", now, 10, 30, 10)
    assert await store.claim_deliveries("w2", now, 10, 30, 10) == []
    await store.record_attempts(
        "w1",
        [
            AttemptResult(
                task.seq,
                None,
                now,
                12.0,
                "pending",
                now + 5,
                500,
                "HTTP 500",
                "http_status",
                "oops",
            )
        ],
        DISABLE_AFTER,
    )
    [delivery] = (await store.list_deliveries(event_id=event.id)).items
    assert (delivery.status, delivery.attempt_count, delivery.last_status_code) == (
        "pending",
        1,
        500,
    )
    assert await store.claim_deliveries("w2", now + 1, 10, 30, 10) == []  # not due yet
    [again] = await store.claim_deliveries("w2", now + 6, 10, 30, 10)
    await store.release_claims("w2")
    [retaken] = await store.claim_deliveries("w3", now + 6, 10, 30, 10)
    assert again.seq == retaken.seq == task.seq
    await store.record_attempts(
        "w2", [AttemptResult(task.seq, None, now, 1.0, "succeeded", None, 200)], DISABLE_AFTER
    )
    assert ((await store.list_deliveries(event_id=event.id)).items)[
        0
    ].status == "pending"  # w2 no longer held it
    await store.record_attempts(
        "w3", [AttemptResult(task.seq, None, now, 1.0, "succeeded", None, 200)], DISABLE_AFTER
    )
    [delivery] = (await store.list_deliveries(event_id=event.id)).items
    assert (delivery.status, delivery.attempt_count) == ("succeeded", 2)


async def test_events_list_newest_first_with_a_stable_cursor(store):
    ids = []
    for _ in range(5):
        job, _ = await store.create_job(a_job())
        event = an_event(job)
        await store.finish_job(job.id, 0, final(), event, to("http://a"))
        ids.append(event.id)
    first = await store.list_events(None, 2, None)
    assert [e.id for e in first.items] == ids[::-1][:2] and first.has_more
    rest = await store.list_events(None, 10, first.items[-1].id)
    assert [e.id for e in rest.items] == ids[::-1][2:] and not rest.has_more


async def test_webhook_inbox_claims_defers_and_finishes(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    await store.add_webhook(job.id, "simulator", 0, True, {"status": "completed"}, b"{}", now)
    [hook] = await store.claim_webhooks("w", now, 10, 30)
    assert hook.trusted and hook.report == {"status": "completed"}
    await store.defer_webhook(hook.id, now + 5)
    assert await store.claim_webhooks("w", now + 1, 10, 30) == []
    [again] = await store.claim_webhooks("w", now + 6, 10, 30)
    await store.finish_webhooks([again.id], now + 6)
    assert await store.claim_webhooks("w", now + 100, 10, 30) == []


async def test_poke_brings_the_next_check_forward(store):
    job, _ = await store.create_job(a_job(next_check_at=time.time() + 600))
    assert await store.claim_jobs("w", time.time(), 10, 30, ()) == []
    await store.poke_job(job.id, time.time())
    assert [j.id for j in await store.claim_jobs("w", time.time() + 0.01, 10, 30, ())] == [job.id]


async def test_deleting_a_subscription_cancels_its_pending_deliveries(store):
    now = time.time()
    subscription = Subscription(
        id=new_id("sub"),
        url="http://a",
        events=["video.completed"],
        secret="whsec_x",
        created_at=now,
        updated_at=now,
    )
    await store.create_subscription(subscription)
    job, _ = await store.create_job(a_job())
    event = an_event(job)
    await store.finish_job(
        job.id, 0, final(), event, lambda subs: [NewDelivery(s.id, s.url) for s in subs]
    )
    assert await store.delete_subscription(subscription.id, now)
    assert not await store.delete_subscription(subscription.id, now)
    assert [d.status for d in (await store.list_deliveries(event_id=event.id)).items] == [
        "cancelled"
    ]


async def test_concurrent_claims_never_overlap_nor_exceed_the_cap(store):
    now = time.time()
    for _ in range(50):
        job, _ = await store.create_job(a_job())
        await store.finish_job(
            job.id,
            0,
            final(),
            an_event(job),
            lambda subs: [NewDelivery(None, f"http://target-{n}") for n in range(4)],
        )
    claims = await asyncio.gather(
        *(store.claim_deliveries(f"w{n}", now + 1, 30, 30, 10) for n in range(8))
    )
    claimed = [task for batch in claims for task in batch]
    assert len({task.seq for task in claimed}) == len(claimed) == 40  # 4 targets x cap 10
    assert {url: n for url, n in Counter(task.url for task in claimed).items()} == {
        f"http://target-{n}": 10 for n in range(4)
    }


async def test_a_failing_transaction_among_concurrent_ones_rolls_back_alone(store):
    jobs = [(await store.create_job(a_job()))[0] for _ in range(10)]

    def broken(subscriptions):
        raise RuntimeError("crash while routing")

    outcomes = await asyncio.gather(
        *(
            store.finish_job(
                job.id, 0, final(), an_event(job), broken if n == 4 else to("http://a")
            )
            for n, job in enumerate(jobs)
        ),
        return_exceptions=True,
    )
    assert isinstance(outcomes[4], RuntimeError)
    assert [outcome for n, outcome in enumerate(outcomes) if n != 4] == [True] * 9
    assert (await store.get_job(jobs[4].id)).status == "queued"
    assert len((await store.list_events(None, 100, None)).items) == 9


async def test_a_rate_limit_is_one_bucket_whoever_takes_from_it(store, database_url):
    now = time.time()
    subscription = Subscription(
        id=new_id("sub"),
        url="http://a",
        events=["video.completed"],
        secret="whsec_x",
        rate_limit=2,
        created_at=now,
        updated_at=now,
    )
    await store.create_subscription(subscription)
    # A second store on the same database stands for another worker.
    other = await open_store(database_url, store.cipher)
    try:
        takers = [store, other, store, other]
        waits = [(await taker.take_rate_tokens(subscription.id, 2, 1, now))[0] for taker in takers]
        # Two saved up, then one every half second, whichever worker asks.
        assert waits == pytest.approx([0, 0, 0.5, 1.0])
        assert await other.take_rate_tokens(subscription.id, 2, 3, now) == pytest.approx(
            [1.5, 2.0, 2.5]
        )
        await other.give_back_rate_tokens(subscription.id, 2, 2)
        assert await store.take_rate_tokens(subscription.id, 2, 1, now) == pytest.approx([2.0])
        # Idle time refills the bucket up to its size, no further.
        later = now + 60
        assert await store.take_rate_tokens(subscription.id, 2, 3, later) == pytest.approx(
            [0, 0, 0.5]
        )
        # A new rate starts from a full bucket.
        await store.update_subscription(subscription.id, {"rate_limit": 4}, later)
        assert await store.take_rate_tokens(subscription.id, 4, 5, later) == pytest.approx(
            [0, 0, 0, 0, 0.25]
        )
    finally:
        await other.close()


async def test_a_webhook_reporting_what_is_recorded_is_not_recorded_again(store):
    job, _ = await store.create_job(a_job())
    now = time.time()
    completed = {"status": "completed"}
    assert await store.add_webhook(job.id, "simulator", 0, True, completed, b"{}", now)
    # the same report, however the body differs (a new signature timestamp): a duplicate
    assert not await store.add_webhook(job.id, "simulator", 0, True, completed, b"{ }", now)
    # another report, another attempt: each news
    assert await store.add_webhook(job.id, "simulator", 0, True, {"status": "failed"}, b"", now)
    assert await store.add_webhook(job.id, "simulator", 1, True, completed, b"{}", now)
    # unverified, or unreadable: only reasons to ask the provider, each of them recorded
    assert await store.add_webhook(job.id, "simulator", 0, False, completed, b"{}", now)
    assert await store.add_webhook(job.id, "simulator", 0, False, completed, b"{}", now)
    assert await store.add_webhook(job.id, "simulator", 0, False, None, b"a", now)
    assert await store.add_webhook(job.id, "simulator", 0, False, None, b"a", now)
    assert len(await store.claim_webhooks("w", now, 10, 30)) == 7


async def test_jobs_read_together_each_come_back_to_their_reader(store):
    jobs = [(await store.create_job(a_job()))[0] for _ in range(30)]
    ids = [job.id for job in jobs] + ["vid_missing"]
    found = await asyncio.gather(*(store.get_job(job_id) for job_id in ids))
    assert [job.id if job else None for job in found] == [job.id for job in jobs] + [None]
