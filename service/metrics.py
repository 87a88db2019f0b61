"""Prometheus metrics.

Counters and histograms count what this process did (the worker's delivery, poll and submission
counters appear on `serve`'s /metrics, or on a worker's own VIDEOHOOKS_METRICS_LISTEN); under
`--processes N` they count what all N processes did (prometheus_client's multiprocess mode, in a
directory service/supervisor.py gives its children). Queue depths are read from the database when
/metrics is scraped, so any web process reports them for the whole deployment.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from storage import Store

DELIVERIES = Counter(
    "videohooks_deliveries",
    "Delivery attempts by outcome: succeeded, retrying, failed (no attempts left), deferred (rate"
    " limit), and by subscription (callback for a job's own callback_url).",
    ["outcome", "subscription"],
)
ATTEMPT_SECONDS = Histogram(
    "videohooks_delivery_attempt_seconds",
    "Duration of delivery attempts, from connect to the first 4 KiB of the answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
# Read from the database by whichever process is scraped: its reading is the deployment's.
PENDING = Gauge(
    "videohooks_deliveries_pending",
    "Deliveries waiting to be sent or retried.",
    multiprocess_mode="mostrecent",
)
FAILED = Gauge(
    "videohooks_deliveries_failed",
    "Deliveries that used every attempt (kept).",
    multiprocess_mode="mostrecent",
)
OLDEST_PENDING = Gauge(
    "videohooks_oldest_pending_delivery_seconds",
    "Age of the oldest delivery still pending.",
    multiprocess_mode="mostrecent",
)
POLLS = Counter(
    "videohooks_polls",
    "Status polls by provider and result (a status, or transient_error / permanent_error).",
    ["provider", "result"],
)
WEBHOOKS = Counter(
    "videohooks_webhooks",
    "Provider webhooks received, by provider and result: accepted, ignored (duplicate or late),"
    " rejected (bad token or signature), mismatch (a body about another job), handshake (a"
    " provider checking its callback URL, answered at once).",
    ["provider", "result"],
)
SUBMISSIONS = Counter(
    "videohooks_submissions",
    "Submissions to providers by result: accepted, transient_error, rejected, not_configured;"
    " uncertain (it may have reached the provider, but no answer came) and reconciled (such a"
    " submission's provider job was found, so it was paid for once).",
    ["provider", "result"],
)
EVENTS = Counter("videohooks_events", "Terminal events created, by type.", ["type"])
LIVE_STREAMS = Gauge(
    "videohooks_dashboard_live_streams",
    "Dashboard pages receiving live updates now.",
    multiprocess_mode="livesum",
)
# prometheus_client's own variable: set, every metric of the process is kept in that directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def registry(directory: str | None = None) -> CollectorRegistry:
    """This process's metrics, or every process's when run under a supervisor (which names
    their directory; its children find it in their environment)."""
    directory = directory or os.environ.get(MULTIPROC_ENV)
    if directory is None:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=directory)
    return merged


def exposition() -> bytes:
    return generate_latest(registry())


async def refresh_queue_gauges(store: Store) -> None:
    stats = await store.delivery_stats()
    PENDING.set(stats.pending)
    FAILED.set(stats.failed)
    oldest = stats.oldest_pending_at
    OLDEST_PENDING.set(0 if oldest is None else max(0.0, time.time() - oldest))
