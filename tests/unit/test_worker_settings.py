"""The worker's settings and the Temporal connection from TEMPORAL_* variables."""

from __future__ import annotations

import pytest
from temporalio.envconfig import ClientConfig

from signgate.settings import Settings, SettingsError


def test_worker_settings_read_callback_secrets_and_hide_them() -> None:
    settings = Settings.from_env(
        {
            "SIGNGATE_CALLBACK_SECRET": "default-secret-value",
            "SIGNGATE_CALLBACK_SECRETS": '{"payouts": "payout-secret-value"}',
            "SIGNGATE_LEDGER_PATH": "/var/lib/signgate/ledger.sqlite",
            "SIGNGATE_METRICS_PORT": "9464",
        }
    )
    assert isinstance(settings, Settings)
    secrets = {k: v.get_secret_value() for k, v in settings.all_callback_secrets().items()}
    assert secrets == {"default": "default-secret-value", "payouts": "payout-secret-value"}
    assert str(settings.ledger_path) == "/var/lib/signgate/ledger.sqlite"
    assert settings.metrics_port == 9464
    shown = repr(settings)
    assert "default-secret-value" not in shown and "payout-secret-value" not in shown


def test_a_malformed_secret_map_is_a_readable_error() -> None:
    with pytest.raises(SettingsError, match="SIGNGATE_CALLBACK_SECRETS: must be a JSON object"):
        Settings.from_env({"SIGNGATE_CALLBACK_SECRETS": "payouts=abc"})


def test_unknown_worker_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="SIGNGATE_LEDGER_PAHT"):
        Settings.from_env({"SIGNGATE_LEDGER_PAHT": "x"})


def test_standard_temporal_variables_configure_the_connection() -> None:
    config = ClientConfig.load_client_connect_config(
        override_env_vars={
            "TEMPORAL_ADDRESS": "acme.a1b2c.tmprl.cloud:7233",
            "TEMPORAL_NAMESPACE": "acme.a1b2c",
            "TEMPORAL_API_KEY": "api-key-for-tests",
        }
    )
    assert config["target_host"] == "acme.a1b2c.tmprl.cloud:7233"
    assert config["namespace"] == "acme.a1b2c"
    assert config["api_key"] == "api-key-for-tests"
