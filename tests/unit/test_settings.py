"""Settings come from SIGNGATE_* variables and refuse bad values with a readable message."""

from __future__ import annotations

from pathlib import Path

import pytest

from signgate.settings import DEFAULT_SANDBOX_URL, Settings, SettingsError


def test_defaults_point_at_the_embedded_sandbox() -> None:
    settings = Settings.from_env({})
    assert settings.dfns_base_url == DEFAULT_SANDBOX_URL
    assert settings.dfns_auth_token is None
    assert settings.task_queue == "signgate"
    assert settings.log_format == "auto"


def test_real_dfns_by_environment_only(tmp_path: Path) -> None:
    key_file = tmp_path / "cred.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    settings = Settings.from_env(
        {
            "SIGNGATE_DFNS_BASE_URL": "https://api.dfns.io/",
            "SIGNGATE_DFNS_AUTH_TOKEN": "eyJhbGciOi.eyJzdWIiOi.sig",
            "SIGNGATE_DFNS_CREDENTIAL_ID": "Y2ktM2ZjZzQtZ",
            "SIGNGATE_DFNS_PRIVATE_KEY_FILE": str(key_file),
            "SIGNGATE_DFNS_SEND_NONCE": "true",
            "SIGNGATE_LOG_LEVEL": "debug",
            "UNRELATED": "ignored",
        }
    )
    assert settings.dfns_base_url == "https://api.dfns.io"
    assert settings.dfns_send_nonce is True
    assert settings.log_level == "DEBUG"
    assert settings.credential_private_key_pem() == key_file.read_text()
    # The token is a SecretStr: it never shows in a repr that could reach a log line.
    assert "eyJhbGciOi" not in repr(settings)


def test_empty_variable_means_unset() -> None:
    assert Settings.from_env({"SIGNGATE_DFNS_APP_ID": ""}).dfns_app_id is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SIGNGATE_DFNS_BASE_URL": "api.dfns.io"}, "SIGNGATE_DFNS_BASE_URL"),
        ({"SIGNGATE_DFNS_BASE_URL": "https://x.io/?a=1"}, "query string"),
        ({"SIGNGATE_DFNS_TIMEOUT_SECONDS": "0"}, "SIGNGATE_DFNS_TIMEOUT_SECONDS"),
        ({"SIGNGATE_METRICS_PORT": "70000"}, "SIGNGATE_METRICS_PORT"),
        ({"SIGNGATE_LOG_LEVEL": "chatty"}, "SIGNGATE_LOG_LEVEL"),
        ({"SIGNGATE_DFNS_CREDENTIAL_ID": "c1"}, "no private key"),
        ({"SIGNGATE_DFNS_PRIVATE_KEY": "pem"}, "SIGNGATE_DFNS_CREDENTIAL_ID is not"),
        (
            {"SIGNGATE_DFNS_BASEURL": "https://api.dfns.io"},
            "unknown setting(s) SIGNGATE_DFNS_BASEURL",
        ),
    ],
)
def test_bad_values_are_named(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert expected in str(info.value)


def test_both_key_forms_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="only one of"):
        Settings.from_env(
            {
                "SIGNGATE_DFNS_CREDENTIAL_ID": "c1",
                "SIGNGATE_DFNS_PRIVATE_KEY": "pem",
                "SIGNGATE_DFNS_PRIVATE_KEY_FILE": str(tmp_path / "k.pem"),
            }
        )


def test_unreadable_key_file_is_explained(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "SIGNGATE_DFNS_CREDENTIAL_ID": "c1",
            "SIGNGATE_DFNS_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem"),
        }
    )
    with pytest.raises(SettingsError, match="cannot read it"):
        settings.credential_private_key_pem()


# --- webhook receiver and adaptive polling ---------------------------------------------------


def test_webhook_receiver_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.webhook_host, settings.webhook_port) == ("127.0.0.1", 8788)
    assert settings.webhook_secret_file == Path(".signgate/webhook.json")
    assert settings.webhook_tolerance_seconds == 300
    assert settings.webhook_max_body_bytes == 1_048_576
    assert settings.webhook_secret is None and settings.webhook_secondary_secret is None
    assert settings.webhooks_enabled is False


def test_webhook_secrets_are_never_shown() -> None:
    settings = Settings.from_env(
        {
            "SIGNGATE_WEBHOOK_SECRET": "whs-primary-value",
            "SIGNGATE_WEBHOOK_SECONDARY_SECRET": "whs-rotating-value",
            "SIGNGATE_WEBHOOK_TOLERANCE_SECONDS": "60",
            "SIGNGATE_WEBHOOK_PORT": "0",
        }
    )
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "whs-primary-value"
    assert settings.webhook_tolerance_seconds == 60
    assert settings.webhook_port == 0
    assert "whs-primary-value" not in repr(settings)
    assert "whs-rotating-value" not in repr(settings)


def test_polling_is_tight_without_webhooks_and_relaxed_with_them() -> None:
    from datetime import timedelta

    tight = Settings.from_env({}).polling_policy()
    relaxed = Settings.from_env({"SIGNGATE_WEBHOOKS_ENABLED": "true"}).polling_policy()
    assert tight.initial_interval == timedelta(seconds=2)
    assert tight.max_interval == timedelta(minutes=1)
    assert relaxed.initial_interval == timedelta(seconds=15)
    assert relaxed.max_interval == timedelta(minutes=15)
    assert relaxed.max_interval > tight.max_interval
    # A starter may also decide per call.
    assert Settings.from_env({}).polling_policy(webhooks=True) == relaxed


def test_reads_are_local_activities_only_when_the_budget_is_off() -> None:
    assert Settings.from_env({}).polling_policy().local_reads is False
    trial = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "100"})
    assert trial.polling_policy().local_reads is False
    unbudgeted = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "0"})
    assert unbudgeted.polling_policy().local_reads is True
    assert unbudgeted.polling_policy(webhooks=True).local_reads is True


def test_polling_policies_are_settable() -> None:
    from datetime import timedelta

    settings = Settings.from_env(
        {
            "SIGNGATE_POLL_INITIAL_SECONDS": "1",
            "SIGNGATE_POLL_MAX_SECONDS": "10",
            "SIGNGATE_POLL_BACKOFF": "1.5",
            "SIGNGATE_WEBHOOK_POLL_INITIAL_SECONDS": "60",
            "SIGNGATE_WEBHOOK_POLL_MAX_SECONDS": "3600",
            "SIGNGATE_WEBHOOK_POLL_BACKOFF": "3",
        }
    )
    tight = settings.polling_policy(webhooks=False)
    assert (tight.initial_interval, tight.max_interval) == (
        timedelta(seconds=1),
        timedelta(seconds=10),
    )
    assert tight.backoff_coefficient == 1.5
    relaxed = settings.polling_policy(webhooks=True)
    assert relaxed.max_interval == timedelta(hours=1)
    assert relaxed.backoff_coefficient == 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SIGNGATE_WEBHOOK_PORT": "70000"}, "SIGNGATE_WEBHOOK_PORT"),
        ({"SIGNGATE_WEBHOOK_TOLERANCE_SECONDS": "0"}, "SIGNGATE_WEBHOOK_TOLERANCE_SECONDS"),
        ({"SIGNGATE_WEBHOOK_MAX_BODY_BYTES": "10"}, "SIGNGATE_WEBHOOK_MAX_BODY_BYTES"),
        ({"SIGNGATE_POLL_INITIAL_SECONDS": "0.5"}, "SIGNGATE_POLL_INITIAL_SECONDS"),
        (
            {
                "SIGNGATE_WEBHOOK_POLL_INITIAL_SECONDS": "120",
                "SIGNGATE_WEBHOOK_POLL_MAX_SECONDS": "60",
            },
            "SIGNGATE_WEBHOOK_POLL_MAX_SECONDS (60) must not be shorter",
        ),
        ({"SIGNGATE_WEBHOOKS_ENABLED": "maybe"}, "SIGNGATE_WEBHOOKS_ENABLED"),
    ],
)
def test_bad_webhook_and_polling_values_are_named(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert expected in str(info.value)
