"""API keys as an operator manages them: `videohooks api-key create|list|revoke` beside a running
`videohooks web`, which refuses a revoked key within seconds."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tests.support.databases import BACKENDS
from tests.support.processes import Process
from tests.support.servers import eventually

pytestmark = [
    pytest.mark.parametrize("backend", BACKENDS, indirect=True),
    pytest.mark.usefixtures("processes_reaped"),
]


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def cli(args: list[str], env: dict[str, str], folder) -> tuple[int, str]:
    """Runs a command to its end: its exit code and everything it printed."""
    process = await Process.start(args, env, folder)
    assert process.proc.stdout is not None
    output = (await process.proc.stdout.read()).decode()
    return await process.exit_code(), output


async def test_a_key_revoked_by_the_cli_is_refused_by_a_running_web_process(env, tmp_path):
    env = {"VIDEOHOOKS_DATABASE_URL": env["VIDEOHOOKS_DATABASE_URL"]} | {
        name: value for name, value in env.items() if name == "VIDEOHOOKS_ENCRYPTION_KEY"
    }
    web = await Process.start(["web", "--port", "0"], env, tmp_path)
    try:
        first = (await web.expect(r"API key \(shown once; only its hash is stored\): (\S+)"))[1]
        url = await web.url()
        code, created = await cli(["api-key", "create", "--name", "ci"], env, tmp_path)
        assert code == 0, created
        key_id, key = created.split("API key ")[1].split(" (shown once; only its hash is stored): ")
        key = key.strip()
        code, bare = await cli(["api-key"], env, tmp_path)  # as older docs have it: create
        assert code == 0 and "(shown once; only its hash is stored): vhk_" in bare
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/v1/videos", headers=bearer(key))).status_code == 200
            code, listed = await cli(["api-key", "list"], env, tmp_path)
            assert code == 0 and key not in listed and first not in listed
            [row] = [line.split() for line in listed.splitlines() if line.startswith(key_id)]
            # id, name, prefix, created, last used (just now, not "never"), status
            assert row[1:3] == ["ci", key[:8] + "…"] and row[4] != "never"
            assert row[5] == "active" and len(listed.splitlines()) == 4

            code, revoked = await cli(["api-key", "revoke", key_id], env, tmp_path)
            assert code == 0 and key_id in revoked

            async def refused() -> bool:
                answer = await client.get("/v1/videos", headers=bearer(key))
                return answer.status_code == 401

            await eventually(refused, timeout=30)
            assert (await client.get("/v1/videos", headers=bearer(first))).status_code == 200
        code, listed = await cli(["api-key", "list"], env, tmp_path)
        assert [line.split()[5] for line in listed.splitlines() if line.startswith(key_id)] == [
            "revoked"
        ]
        assert (await cli(["api-key", "revoke", key_id], env, tmp_path))[0] == 1
        configured = env | {"VIDEOHOOKS_API_KEYS": "vhk_configured_elsewhere"}
        code, listed = await cli(["api-key", "list"], configured, tmp_path)
        assert code == 0 and "VIDEOHOOKS_API_KEYS is set" in listed.splitlines()[0]
        assert (await cli(["api-key", "create"], configured, tmp_path))[0] == 2
    finally:
        assert await web.stop() == 0
