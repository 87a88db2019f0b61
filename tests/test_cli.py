"""The `videohooks` command as a person meets it, run as a real process: help that names every
default and variable, --version, redeliver, and the hint `listen` gives about missed events."""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version

import pytest

from service.cli import _parser
from tests.support.databases import BACKENDS
from tests.support.events import finish_jobs
from tests.support.processes import Process
from tests.support.servers import eventually
from tests.support.service import running_service
from tests.support.subscriber import recording_subscriber


async def run(args: list[str], env: dict[str, str], cwd) -> tuple[int, str, str]:
    process = await Process.start(args, env, cwd)
    assert process.proc.stdout is not None
    out = (await process.proc.stdout.read()).decode()
    return await process.exit_code(), out, await process.stderr()


def subcommands(
    parser: argparse.ArgumentParser | None = None, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Every command, nested ones too ("api-key create"), by its full name."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in (parser or _parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                found[f"{prefix}{name}"] = command
                found |= subcommands(command, f"{prefix}{name} ")
    return found


async def test_version_is_the_installed_packages_even_with_a_bad_configuration(tmp_path):
    code, out, _ = await run(["--version"], {"VIDEOHOOKS_RETRY_SCHEDULE": "soon"}, tmp_path)
    assert code == 0 and out.strip() == f"videohooks {version('videohooks')}"


async def test_the_help_describes_every_command_in_whole_sentences(tmp_path):
    code, out, _ = await run(["--help"], {}, tmp_path)
    assert code == 0
    description = out.split("\n\n")[1].replace("\n", " ")
    assert description.endswith(".") and "video.completed" in description
    for name in subcommands(_parser()):
        if " " not in name:
            assert f"    {name}" in out, name
    assert "VIDEOHOOKS_DATABASE_URL" in out and "sqlite:///./videohooks.db" in out
    assert "--version" in out


def test_every_command_and_option_has_help_naming_its_default():
    for name, command in subcommands().items():
        assert command.description and command.description.endswith("."), name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if action.help == argparse.SUPPRESS:  # how a supervisor talks to its children
                continue
            assert action.help, (name, action.dest)
            if action.option_strings:
                assert "default" in action.help, (name, action.option_strings)


async def test_serve_help_shows_the_port_default_and_its_variable(tmp_path):
    code, out, _ = await run(["serve", "--help"], {}, tmp_path)
    assert code == 0
    flat = " ".join(out.split())
    assert "--port PORT the port to listen on (default $PORT, else 8000)" in flat
    assert "(default 127.0.0.1;" in flat and "$VIDEOHOOKS_DATABASE_URL" in flat


async def test_listen_says_how_to_get_a_missed_event_now(tmp_path):
    listen = await Process.start(["listen", "--port", "0"], {}, tmp_path)
    try:
        await listen.url()
        hint = await listen.expect(r"videohooks redeliver EVT_ID")
        assert "missed" in hint.string
    finally:
        assert await listen.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
async def test_redeliver_sends_an_event_again_now_and_refuses_unknown_ids(env, tmp_path):
    env["VIDEOHOOKS_RETRY_SCHEDULE"] = "1h"  # nothing but redeliver would send it again
    async with recording_subscriber() as subscriber, running_service(env) as svc:
        first = await svc.subscribe(subscriber.url + "/first")
        await finish_jobs(svc.context, 1)
        await eventually(lambda: subscriber.received)
        [event] = await svc.events()
        await eventually(lambda: _all_sent(svc))

        code, out, _ = await run(["redeliver", event["id"]], env, tmp_path)
        assert code == 0 and out.startswith(f"queued 1 deliveries of {event['id']}")
        await eventually(lambda: len(subscriber.received) == 2)
        assert subscriber.received[1].headers["webhook-id"] == event["id"]

        # To one subscription that never had it.
        second = await svc.subscribe(subscriber.url + "/second")
        args = ["redeliver", event["id"], "--subscription", second["id"]]
        code, out, _ = await run(args, env, tmp_path)
        assert code == 0 and "queued 1" in out
        await eventually(lambda: [r.path for r in subscriber.received][-1:] == ["/second"])

        for args, named in (
            (["redeliver", "evt_nope"], "evt_nope: no such event"),
            (["redeliver", event["id"], "--subscription", "sub_nope"], "sub_nope: no such"),
        ):
            code, out, err = await run(args, env, tmp_path)
            assert code == 1 and out == "", args
            assert named in err and env["VIDEOHOOKS_DATABASE_URL"] in err, err
        await svc.api.patch(f"/v1/subscriptions/{first['id']}", json={"status": "disabled"})
        code, _, err = await run(
            ["redeliver", event["id"], "--subscription", first["id"]], env, tmp_path
        )
        assert code == 1 and "disabled" in err
        assert len([r for r in subscriber.received if r.path == "/first"]) == 2


async def _all_sent(svc) -> bool:
    found = json.loads((await svc.api.get("/v1/deliveries")).text)["data"]
    return bool(found) and all(d["status"] == "succeeded" for d in found)
