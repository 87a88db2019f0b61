"""The files a project is expected to have say what they must: the license pyproject names, how
to contribute (with commands and paths that exist), how to report a vulnerability, what changed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def test_the_license_is_the_apache_2_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.split()) > 1500
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}


def test_contributing_gives_the_readmes_commands_and_real_paths():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    readme_test = re.search(r"\n(python3 -m venv .* -m pytest)\n", README)
    assert readme_test and f"\n{readme_test[1]}\n" in text
    python_only = re.search(r"only the Python suite, `([^`]+)`", README)
    assert python_only and f"\n{python_only[1]}\n" in text
    for heading in ("## Running the tests", "## Adding a provider", "## Adding a migration"):
        assert heading in text, heading
    # Every concrete file or folder it names exists (placeholders like <name> or NNNN aside).
    named = set(re.findall(r"`((?:service|handlers|storage|tests|docs|\.ci)/[^`\s]*)`", text))
    concrete = {path for path in named if not re.search(r"<|NNNN", path)}
    assert len(concrete) >= 10
    for path in concrete:
        assert (ROOT / path).exists(), path


def test_security_says_how_to_report_privately():
    text = (ROOT / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in text and "privately" in text
    assert "docs/security.md" in text


def test_the_changelog_has_an_unreleased_section_and_the_released_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert "## [Unreleased]" in text and f"## [{version}]" in text
