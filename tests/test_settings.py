"""Configuration: defaults, parsing, and one clear line per bad variable."""

from __future__ import annotations

import base64

import pytest

from service.settings import ConfigError, Settings

NEW_KEY = base64.b64encode(b"n" * 32).decode()
OLD_KEY = base64.b64encode(b"o" * 32).decode()


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
