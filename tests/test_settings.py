"""Configuration: defaults, parsing, and one clear line per bad variable."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import ConfigError, Settings

NEW_KEY = base64.b64encode(b"n" * 32).decode()
OLD_KEY = base64.b64encode(b"o" * 32).decode()
ROOT = Path(__file__).parents[1]


def test_defaults_match_the_contract():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///./videohooks.db"
    assert settings.public_url is None and settings.api_keys == ()
    assert settings.retry_schedule == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert settings.allow_private_urls is False and settings.simulator is True
    assert settings.delivery_timeout == 15 and settings.job_timeout == 86400
    assert settings.submit_reconcile == 600 and settings.resubmit_uncertain is False


def test_values_are_parsed():
    settings = Settings.from_env(
        {
            "VIDEOHOOKS_RETRY_SCHEDULE": "250ms, 2s,1m,1.5h",
            "VIDEOHOOKS_API_KEYS": "a, b,,",
            "VIDEOHOOKS_PUBLIC_URL": "https://hooks.example.com/",
            "VIDEOHOOKS_ALLOW_PRIVATE_URLS": "TRUE",
            "VIDEOHOOKS_HEDRA_API_KEY": "hk",
            "VIDEOHOOKS_FAL_JWKS_URL": "http://127.0.0.1:1/jwks",
            "VIDEOHOOKS_DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
            "VIDEOHOOKS_ENCRYPTION_KEY": f"{NEW_KEY},{OLD_KEY}",
            "VIDEOHOOKS_SUBMIT_RECONCILE": "1h",
            "VIDEOHOOKS_RESUBMIT_UNCERTAIN": "true",
        }
    )
    assert settings.submit_reconcile == 3600 and settings.resubmit_uncertain
    assert settings.retry_schedule == (0.25, 2, 60, 5400)
    assert settings.api_keys == ("a", "b")
    assert settings.public_url == "https://hooks.example.com"
    assert settings.allow_private_urls
    assert settings.providers["hedra"].api_key == "hk"
    assert settings.providers["fal"].options == {"JWKS_URL": "http://127.0.0.1:1/jwks"}
    assert not settings.is_sqlite
    assert [base64.b64encode(key).decode() for key in settings.encryption_keys] == [
        NEW_KEY,
        OLD_KEY,
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VIDEOHOOKS_RETRY_SCHEDULE", "5s,soon"),
        ("VIDEOHOOKS_DATABASE_URL", "mysql://x"),
        ("VIDEOHOOKS_PUBLIC_URL", "hooks.example.com"),
        ("VIDEOHOOKS_ALLOW_PRIVATE_URLS", "maybe"),
        ("VIDEOHOOKS_CALLBACK_SECRET", "not-a-whsec"),
        ("VIDEOHOOKS_DELIVERY_CONCURRENCY", "0"),
        ("VIDEOHOOKS_HEDRA_BASE_URL", "ftp://x"),
        ("VIDEOHOOKS_ALLOWED_CIDRS", "10.0.0.0/33"),
        ("VIDEOHOOKS_ENCRYPTION_KEY", "c2hvcnQ="),
        ("VIDEOHOOKS_ENCRYPTION_KEY", f"{NEW_KEY},not base64!"),
        ("VIDEOHOOKS_SUBMIT_RECONCILE", "soon"),
        ("VIDEOHOOKS_RESUBMIT_UNCERTAIN", "sometimes"),
        ("VIDEOHOOKS_PROCESSES", "0"),
        # Unicode digits pass str.isdigit() but not int(); NaN and infinity pass float().
        ("VIDEOHOOKS_PROCESSES", "²"),
        ("VIDEOHOOKS_METRICS_LISTEN", "127.0.0.1:²"),
        ("VIDEOHOOKS_RETENTION_DAYS", "nan"),
        ("VIDEOHOOKS_RETENTION_DAYS", "inf"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(variable, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable + ": ")
    assert "\n" not in str(raised.value)


def test_the_encryption_key_is_optional_on_every_backend():
    postgres = {"VIDEOHOOKS_DATABASE_URL": "postgresql://u@127.0.0.1:5432/db"}
    assert Settings.from_env(postgres).encryption_keys == ()  # a key file instead
    assert Settings.from_env({}).encryption_keys == ()


def test_poll_min_above_poll_max_is_refused():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"VIDEOHOOKS_POLL_MIN": "5s", "VIDEOHOOKS_POLL_MAX": "2s"})
    assert raised.value.variable == "VIDEOHOOKS_POLL_MIN"
    assert "VIDEOHOOKS_POLL_MAX" in str(raised.value)
    Settings.from_env({"VIDEOHOOKS_POLL_MIN": "2s", "VIDEOHOOKS_POLL_MAX": "2s"})


def test_an_unknown_variable_is_named_once_with_the_likely_one():
    settings = Settings.from_env(
        {
            "VIDEOHOOKS_REPLICATE_APIKEY": "r8_x",
            "VIDEOHOOKS_POLLMAX": "1m",
            "VIDEOHOOKS_HEDRA_COLOUR": "blue",
            # known: read by settings.py, a handler's declared option, a contract provider's key
            "VIDEOHOOKS_POLL_MAX": "1m",
            "VIDEOHOOKS_FAL_JWKS_URL": "http://127.0.0.1:1/jwks",
            "VIDEOHOOKS_RUNWAY_API_KEY": "k",
            "OTHER_APIKEY": "not ours",
        }
    )
    assert settings.warnings == (
        "VIDEOHOOKS_HEDRA_COLOUR is not a videohooks variable and is ignored",
        "VIDEOHOOKS_POLLMAX is not a videohooks variable and is ignored"
        " (did you mean VIDEOHOOKS_POLL_MAX?)",
        "VIDEOHOOKS_REPLICATE_APIKEY is not a videohooks variable and is ignored"
        " (did you mean VIDEOHOOKS_REPLICATE_API_KEY?)",
    )


def test_every_variable_the_docs_list_is_known():
    """The README's configuration table and the provider pages name only variables read."""
    documented = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        documented |= set(re.findall(r"`(VIDEOHOOKS_[A-Z0-9_]+)`", page.read_text()))
    documented -= {"VIDEOHOOKS_REQUIRE_POSTGRES", "VIDEOHOOKS_TEST_POSTGRES_URL"}
    documented -= {"VIDEOHOOKS_FUZZ_EXAMPLES", "VIDEOHOOKS_SCREENSHOTS"}  # the test suite's
    documented -= {"VIDEOHOOKS_REPLICATE_APIKEY"}  # the README's example of a typo
    # Empty values count as unset: every default parses, and only the names are judged.
    assert Settings.from_env(dict.fromkeys(documented, "")).warnings == ()


def run_cli(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIDEOHOOKS_")}
    env |= {"VIDEOHOOKS_DATABASE_URL": f"sqlite:///{tmp_path}/v.db", **variables}
    return subprocess.run(
        [sys.executable, "-m", "service", *args], env=env, capture_output=True, text=True
    )


def test_the_cli_refuses_poll_min_above_poll_max_with_one_line(tmp_path):
    done = run_cli(tmp_path, "migrate", VIDEOHOOKS_POLL_MIN="1m", VIDEOHOOKS_POLL_MAX="30s")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "VIDEOHOOKS_POLL_MIN" in line and "VIDEOHOOKS_POLL_MAX" in line


def test_the_cli_warns_of_an_unknown_variable_at_start(tmp_path):
    done = run_cli(tmp_path, "migrate", VIDEOHOOKS_REPLICATE_APIKEY="r8_x")
    assert done.returncode == 0
    [warning] = [line for line in done.stderr.splitlines() if "APIKEY" in line]
    assert "VIDEOHOOKS_REPLICATE_API_KEY" in warning and '"level": "warning"' in warning
