"""End-to-end benchmarks: the front door and the whole pipeline, from outside the service.

Three modes, each starting the service's processes itself and the subscriber (bench/receiver.py)
as another:

- `webhooks`: `videohooks serve`; this process plays the provider and sends signed simulator
  webhooks ("completed") at a steady rate, one per running job; p50/p99 from sending a webhook to
  the subscriber receiving the job's event.
- `clients`: `videohooks web` and `videohooks worker` as separate processes, and the simulator
  (the provider) in a `videohooks web` of its own; C concurrent clients POST /v1/videos until
  --jobs are accepted. Reports jobs accepted/s, end-to-end jobs/s (submit → simulator → webhook →
  event → a delivery to each of --subscribers), p50/p99 from submission to receipt, the web
  processes' CPU per accepted job, and in the same run the same clients against a trivial
  starlette endpoint (bench/front_ceiling.py): what one client process can drive here.
- `rate`: the same processes; POST /v1/videos at a fixed --rate for --seconds; request latency
  p50/p99 beside the trivial endpoint's at the same rate, and the pipeline's as in `clients`.

    .venv/bin/python bench/e2e.py --rate 200 --seconds 30
    .venv/bin/python bench/e2e.py --mode clients --clients 32 --jobs 2000 --subscribers 3
    .venv/bin/python bench/e2e.py --mode rate --rate 200 --seconds 10
    .venv/bin/python bench/e2e.py --mode clients --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx2 as httpx
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).parents[1]))

from fanout import ENCRYPTION_KEY, fresh_schema, percentile, receipts, start_receiver

from service.cli import run
from service.context import running
from service.server import bind
from service.settings import Settings
from service.signing import new_secret
from service.tokens import ReceiverTokens
from storage.ids import new_id
from storage.records import Job, Subscription

SECRET_KEY = "bench-secret-key"
API_KEY = "bench-key"


async def prepare(env: dict[str, str], subscriber: str, count: int) -> list[Job]:
    """Running simulator jobs, as if submitted, and one subscription. Their next poll is far off:
    only the webhooks finish them."""
    async with running(Settings.from_env(env)) as context:
        now = time.time()
        await context.store.create_subscription(
            Subscription(
                id=new_id("sub"),
                url=subscriber,
                events=["video.completed", "video.failed"],
                secret=new_secret(),
                created_at=now,
                updated_at=now,
            )
        )
        jobs = []
        for index in range(count):
            job = Job(
                id=new_id("vid"),
                status="in_progress",
                model="simulator/bench",
                provider="simulator",
                provider_job_id=f"sim_bench_{index}",
                request={"model": "simulator/bench", "fallback_models": []},
                attempts=[
                    {
                        "provider": "simulator",
                        "model": "simulator/bench",
                        "provider_job_id": f"sim_bench_{index}",
                        "error": None,
                    }
                ],
                created_at=now,
                updated_at=now,
                deadline_at=now + 86400,
                next_check_at=now + 86400,
            )
            await context.store.create_job(job)
            jobs.append(job)
        return jobs


def webhook_body(job: Job) -> str:
    return json.dumps(
        {
            "id": job.provider_job_id,
            "object": "video",
            "status": "completed",
            "progress": 100,
            "model": "bench",
            "created_at": job.created_at,
            "outputs": [{"url": "https://cdn.example/video.mp4", "content_type": "video/mp4"}],
        }
    )


async def send_webhooks(
    service: str, jobs: list[Job], rate: float, secret: str
) -> dict[str, float]:
    tokens, signer = ReceiverTokens([SECRET_KEY]), Webhook(secret)
    sent: dict[str, float] = {}
    start = time.perf_counter() + 0.5
    async with aiohttp.ClientSession() as session:

        async def one(index: int, job: Job) -> None:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            body = webhook_body(job)
            now = time.time()
            headers = {
                "webhook-id": f"msg_{index}",
                "webhook-timestamp": str(int(now)),
                "webhook-signature": signer.sign(
                    f"msg_{index}", datetime.fromtimestamp(now, UTC), body
                ),
                "content-type": "application/json",
            }
            url = f"{service}/hooks/simulator/{tokens.issue(job.id, 'simulator', 0)}"
            sent[job.id] = time.time()
            async with session.post(url, data=body, headers=headers) as response:
                assert response.status in (200, 202), await response.text()

        await asyncio.gather(*(one(index, job) for index, job in enumerate(jobs)))
    return sent


async def webhooks_mode(args: argparse.Namespace) -> None:
    count = int(args.rate * args.seconds)
    folder = tempfile.mkdtemp(prefix="videohooks-e2e-")
    database_url = args.database_url or f"sqlite:///{folder}/e2e.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    service = f"http://127.0.0.1:{port}"
    simulator_secret = new_secret()
    env = {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_PUBLIC_URL": service,
        "VIDEOHOOKS_SECRET_KEY": SECRET_KEY,
        "VIDEOHOOKS_SIMULATOR_WEBHOOK_SECRET": simulator_secret,
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
    }
    receiver, subscriber = start_receiver()
    jobs = await prepare(env, subscriber + "/e2e", count)
    serve = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        env={key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
        | env,
        stdout=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(service + "/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            sent = await send_webhooks(service, jobs, args.rate, simulator_secret)
            deadline = time.time() + 60
            while (
                int((await client.get(subscriber + "/count")).text) < count
                and time.time() < deadline
            ):
                await asyncio.sleep(0.05)
        found = await receipts(subscriber)
    finally:
        serve.terminate()
        serve.wait()
        receiver.terminate()
        receiver.wait()
    async with running(Settings.from_env(env)) as context:
        job_of = {}
        after = None
        while True:
            page = await context.store.list_events(None, 100, after)
            job_of |= {event.id: event.job_id for event in page.items}
            if not page.has_more:
                break
            after = page.items[-1].id
    latencies = [at - sent[job_of[event_id]] for event_id, _, at in found]
    print(
        f"\n{count} webhooks at {args.rate:g}/s for {args.seconds:g} s; "
        f"database {database_url.split(':', 1)[0]}; {os.cpu_count()} CPUs"
    )
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    print(
        f"received {len(found)} of {count}; webhook -> subscriber receipt: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


# -- the front door: `clients` and `rate` --------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """CPU seconds used so far by a process and its living descendants (a supervisor's web
    processes), from /proc."""
    children: dict[int, list[int]] = {}
    used: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # After the command name, which may hold spaces: state, ppid, ..., utime (12th), stime.
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def free_url() -> str:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
    return subprocess.Popen(command, env=clean | (env or {}), stdout=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not become ready")


@dataclass
class Load:
    """What one load run saw: each accepted job's submission time, each request's latency."""

    started: float
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    submitted: dict[str, float] = field(default_factory=dict)
    refused: Counter[int] = field(default_factory=Counter)
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.submitted) / self.seconds

    def line(self, name: str) -> str:
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        refused = f"  refused {dict(self.refused)}" if self.refused else ""
        return (
            f"{name:<34} {len(self.submitted):>6} in {self.seconds:6.2f} s = {self.rate:7.0f}/s"
            f"   request p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"
            f"   server CPU {self.server_cpu / max(1, len(self.submitted)) * 1e6:5.0f} µs/job"
            f"   client CPU {self.client_cpu / max(1, len(self.submitted)) * 1e6:4.0f} µs/job"
            f"{refused}"
        )


def job_body(after_s: float) -> bytes:
    return json.dumps(
        {
            "model": "simulator/bench",
            "prompt": "a red fox running through snow, golden hour",
            "duration": 8,
            "input": {"simulate": {"after_s": after_s}},
            "metadata": {"user_id": "42"},
        }
    ).encode()


async def post_jobs(
    url: str, server: int, body: bytes, clients: int, jobs: int, rate: float | None
) -> Load:
    """POSTs `jobs` to url/v1/videos: from `clients` clients each sending its next as soon as
    the last is answered, or when `rate` is given, each at its time on a fixed schedule (latency
    from that time, so a slow answer delays nothing)."""
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    cpu_before, rusage = cpu_seconds(server), resource.getrusage(resource.RUSAGE_SELF)
    load = Load(started=time.time())
    began = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=clients if rate is None else 512)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(due: float) -> None:
            submitted = time.time()
            async with session.post(url + "/v1/videos", data=body, headers=headers) as response:
                answer = await response.read()
            load.latencies.append(time.perf_counter() - due)
            if response.status == 202:
                load.submitted[json.loads(answer)["id"]] = submitted
            else:
                load.refused[response.status] += 1

        if rate is None:
            indexes = iter(range(jobs))

            async def client() -> None:
                for _ in indexes:
                    await one(time.perf_counter())

            await asyncio.gather(*(client() for _ in range(clients)))
        else:

            async def scheduled(index: int) -> None:
                due = began + index / rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                await one(due)

            await asyncio.gather(*(scheduled(index) for index in range(jobs)))
    load.seconds = time.perf_counter() - began
    load.server_cpu = cpu_seconds(server) - cpu_before
    after = resource.getrusage(resource.RUSAGE_SELF)
    load.client_cpu = (after.ru_utime + after.ru_stime) - (rusage.ru_utime + rusage.ru_stime)
    return load


async def ceiling(args: argparse.Namespace, body: bytes, jobs: int) -> Load:
    url = free_url()
    server = start(
        [sys.executable, str(Path(__file__).with_name("front_ceiling.py")), port_of(url)]
    )
    try:
        await wait_ready(url)
        return await post_jobs(url, server.pid, body, args.clients, jobs, args.rate_or_none)
    finally:
        stop(server)


async def subscribe(env: dict[str, str], urls: list[str]) -> None:
    """One subscription per url, before the service starts (which also migrates the schema)."""
    async with running(Settings.from_env(env)) as context:
        now = time.time()
        for url in urls:
            await context.store.create_subscription(
                Subscription(
                    id=new_id("sub"),
                    url=url,
                    events=["video.completed", "video.failed"],
                    secret=new_secret(),
                    created_at=now,
                    updated_at=now,
                )
            )


async def event_jobs(env: dict[str, str]) -> dict[str, str]:
    """Event id -> job id, for every event stored."""
    async with running(Settings.from_env(env)) as context:
        job_of: dict[str, str] = {}
        after = None
        while True:
            page = await context.store.list_events(None, 100, after)
            job_of |= {event.id: event.job_id for event in page.items}
            if not page.has_more:
                return job_of
            after = page.items[-1].id


async def pipeline(
    subscriber: str, expected: int, deadline_s: float
) -> list[tuple[str, str, float]]:
    """The receipts once `expected` arrived, or what arrived when `deadline_s` passed."""
    deadline = time.time() + deadline_s
    async with httpx.AsyncClient() as client:
        while (
            int((await client.get(subscriber + "/count")).text) < expected
            and time.time() < deadline
        ):
            await asyncio.sleep(0.05)
    return await receipts(subscriber)


def profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the web process(es) until interrupted."""
    spy = Path(sys.executable).with_name("py-spy")
    command = [str(spy), "record", "-r", "400", "-f", "raw", "-o", output, "--pid", str(pid)]
    return subprocess.Popen([*command, "--subprocesses", "--nonblocking"])


async def front_mode(args: argparse.Namespace) -> None:
    jobs = args.jobs if args.mode == "clients" else int(args.rate * args.seconds)
    args.rate_or_none = args.rate if args.mode == "rate" else None
    body = job_body(args.after_s)
    folder = tempfile.mkdtemp(prefix="videohooks-e2e-")
    database_url = args.database_url or f"sqlite:///{folder}/e2e.db"
    if database_url.startswith("postgres"):
        database_url = await fresh_schema(database_url)
    web_url, simulator_url = free_url(), free_url()
    env = {
        "VIDEOHOOKS_DATABASE_URL": database_url,
        "VIDEOHOOKS_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "VIDEOHOOKS_PUBLIC_URL": web_url,
        "VIDEOHOOKS_SECRET_KEY": SECRET_KEY,
        "VIDEOHOOKS_API_KEYS": API_KEY,
        "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "true",
        "VIDEOHOOKS_LOG_LEVEL": "WARNING",
        # The provider is another service: the simulator answers from a process of its own.
        "VIDEOHOOKS_SIMULATOR_BASE_URL": simulator_url + "/simulator",
    }
    limit = await ceiling(args, body, jobs)
    receiver, subscriber = start_receiver()
    processes = [receiver]
    try:
        await subscribe(env, [f"{subscriber}/e2e/{index}" for index in range(args.subscribers)])
        python = [sys.executable, "-m", "service"]
        web_command = [*python, "web", "--port", port_of(web_url)]
        web = start([*web_command, "--processes", str(args.web_processes)], env)
        processes.append(web)
        if not args.accept_only:
            # One process: the simulator's scheduled webhooks live in the process that took the job.
            simulator = [*python, "web", "--port", port_of(simulator_url), "--processes", "1"]
            processes.append(start(simulator, env))
            await wait_ready(simulator_url)
        await wait_ready(web_url)
        # The worker last: its own process(es), started once the others listen.
        worker_command = [*python, "worker", "--processes", str(args.worker_processes)]
        worker = None if args.accept_only else start(worker_command, env)
        if worker is not None:
            processes.append(worker)
        names = ("web", "simulator", "worker")
        # CPU from here on: the run's, not the processes' start-up.
        idle = {
            name: cpu_seconds(process.pid)
            for name, process in zip(names, processes[1:], strict=False)
        }
        spy = None if args.profile is None else profiler(web.pid, args.profile)
        load = await post_jobs(web_url, web.pid, body, args.clients, jobs, args.rate_or_none)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
        found: list[tuple[str, str, float]] = []
        if not args.accept_only:
            expected = len(load.submitted) * args.subscribers
            found = await pipeline(subscriber, expected, args.deadline)
            job_of = await event_jobs(env)
        # The run's CPU in each of the service's processes, read before they are stopped.
        used = {
            name: cpu_seconds(process.pid) - idle[name]
            for name, process in zip(names, processes[1:], strict=False)
        }
    finally:
        for process in reversed(processes):
            stop(process)
    kind = database_url.split(":", 1)[0]
    if args.mode == "clients":
        print(f"\n{jobs} jobs from {args.clients} concurrent clients", end="")
    else:
        print(f"\n{jobs} jobs at {args.rate:g}/s for {args.seconds:g} s", end="")
    print(
        f"; database {kind}; web processes {args.web_processes}, "
        + ("no worker" if args.accept_only else f"worker processes {args.worker_processes}")
        + f"; {os.cpu_count()} CPUs;"
        f" simulator after_s {args.after_s:g}"
    )
    print(limit.line("trivial endpoint (client ceiling)"))
    print(load.line("videohooks POST /v1/videos"))
    print(f"accepted / ceiling: {load.rate / limit.rate:.2f}")
    count = len(load.submitted)
    print(
        "the run's CPU per accepted job: "
        + ", ".join(
            f"{name} {seconds / max(1, count) * 1e6:.0f} µs" for name, seconds in used.items()
        )
    )
    if args.accept_only:
        return
    latencies = [at - load.submitted[job_of[event_id]] for event_id, _, at in found]
    delivered: Counter[str] = Counter(job_of[event_id] for event_id, _, _ in found)
    complete = sum(1 for n in delivered.values() if n >= args.subscribers)
    last = max((at for _, _, at in found), default=load.started)
    print(
        f"end to end: {complete} of {count} jobs delivered to all {args.subscribers} subscribers"
        f" ({len(found)} deliveries) in {last - load.started:.2f} s ="
        f" {complete / (last - load.started):.0f} jobs/s"
    )
    if latencies:
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(
            f"submission -> receipt: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms,"
            f" max {max(latencies) * 1000:.0f} ms"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("webhooks", "clients", "rate"), default="webhooks")
    parser.add_argument("--rate", type=float, default=200, help="per second (webhooks, rate)")
    parser.add_argument("--seconds", type=float, default=30, help="(webhooks, rate)")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--clients", type=int, default=32, help="(clients)")
    parser.add_argument("--jobs", type=int, default=2000, help="(clients)")
    parser.add_argument("--subscribers", type=int, default=3, help="(clients, rate)")
    parser.add_argument(
        "--web-processes",
        type=int,
        default=1,
        help="`videohooks web --processes P` (clients, rate)",
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=1,
        help="`videohooks worker --processes W` (clients, rate)",
    )
    parser.add_argument(
        "--after-s", type=float, default=0.2, help="the simulated job's duration (clients, rate)"
    )
    parser.add_argument(
        "--accept-only", action="store_true", help="no worker: the front door alone"
    )
    parser.add_argument("--deadline", type=float, default=120, help="seconds to wait for receipts")
    parser.add_argument("--profile", help="py-spy raw output of the web process(es) under load")
    args = parser.parse_args()
    if args.mode == "webhooks":
        await webhooks_mode(args)
    else:
        await front_mode(args)


if __name__ == "__main__":
    run(main())
