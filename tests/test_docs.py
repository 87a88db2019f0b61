"""The documentation matches the code: the README's commands, its configuration table, CI."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

from handlers import PROVIDER_NAMES, implemented
from service.addresses import IPV4, IPV6
from service.settings import Settings

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
SERVE = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/videohooks serve"
TEST = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m pytest"
)


class Recording(dict[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return default


def variables_read_by_settings() -> set[str]:
    """Every variable Settings reads; per-provider ones as VIDEOHOOKS_<PROVIDER>_…"""
    environ = Recording()
    Settings.from_env(environ)
    providers = "|".join(name.upper() for name in PROVIDER_NAMES)
    return {
        re.sub(rf"^VIDEOHOOKS_({providers})_", "VIDEOHOOKS_<PROVIDER>_", name)
        for name in environ.asked
    }


def readme_table_variables() -> Iterator[str]:
    return (match.group(1) for match in re.finditer(r"^\| `(VIDEOHOOKS_[A-Z_<>]+)`", README, re.M))


def test_the_readme_gives_the_two_quickstart_commands():
    assert f"\n{SERVE}\n" in README
    assert f"\n{TEST}\n" in README


def test_ci_runs_the_readmes_test_command_as_written():
    assert f"\n{TEST}\n" in (ROOT / ".ci" / "run").read_text()


def test_every_variable_the_code_reads_is_in_the_readme_table_and_no_other():
    documented = set(readme_table_variables())
    read = variables_read_by_settings()
    assert read, "the recording environment saw nothing"
    assert read <= documented, f"undocumented: {sorted(read - documented)}"
    # API key and webhook secret are taken from the provider's VIDEOHOOKS_<PROVIDER>_* scan.
    scanned = {"VIDEOHOOKS_<PROVIDER>_API_KEY", "VIDEOHOOKS_<PROVIDER>_WEBHOOK_SECRET"}
    assert documented - read == scanned, f"documented but not read: {sorted(documented - read)}"


def test_the_procfile_has_the_web_and_worker_processes():
    lines = (ROOT / "Procfile").read_text().splitlines()
    assert lines == ["web: videohooks web --host 0.0.0.0 --port $PORT", "worker: videohooks worker"]


def test_the_readmes_links_lead_somewhere():
    for link in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / link).exists(), link


def status_table() -> dict[str, dict[str, str]]:
    """docs/providers.md's status table: provider → column (our status) → the words listed."""
    text = (ROOT / "docs" / "providers.md").read_text()
    section = text.split("## Statuses", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ")]
    header, *body = rows
    columns = [cell.strip() for cell in header]
    return {
        cells[0].strip(): {columns[n]: cells[n].lower() for n in range(1, len(columns))}
        for cells in body
    }


def test_every_handlers_status_words_are_in_the_providers_table():
    table = status_table()
    for name in implemented():
        module = importlib.import_module(f"handlers.{name}")
        for word, status in getattr(module, "STATUSES", {}).items():
            assert word.lower() in table[name][status], f"{name}: {word} → {status}"


def test_every_provider_has_its_page_and_its_row():
    overview = (ROOT / "docs" / "providers.md").read_text()
    for name in implemented():
        assert (ROOT / "docs" / "providers" / f"{name}.md").exists(), name
        assert f"[{name}](providers/{name}.md)" in overview, name


def test_security_md_lists_every_refused_range():
    page = (ROOT / "docs" / "security.md").read_text()
    listed = set(re.findall(r"^\| `([0-9a-f:./]+)` \|", page, re.M))
    assert {str(entry.network) for entry in IPV4 + IPV6} <= listed
