"""The worker's settings and the Temporal connection from TEMPORAL_* variables."""

from __future__ import annotations

import pytest
from temporalio.envconfig import ClientConfig

from signgate.settings import Settings, SettingsError
from worker import lane_rates


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


def test_the_dfns_budget_is_half_the_org_limit_split_between_reads_and_writes() -> None:
    defaults = Settings.from_env({})
    assert defaults.dfns_budget_per_minute("reads") == 250
    assert defaults.dfns_budget_per_minute("writes") == 250
    rates = lane_rates(defaults)
    # Reads cost one call each; a write three (challenge, signed answer, request or decision).
    assert rates == pytest.approx({"reads": 250 / 60, "writes": 250 / 60 / 3})
    trial = Settings.from_env(
        {
            "SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "100",
            "SIGNGATE_DFNS_BUDGET_SHARE": "0.8",
            "SIGNGATE_DFNS_WRITE_SHARE": "0.25",
        }
    )
    assert trial.dfns_budget_per_minute("writes") == pytest.approx(20)
    assert trial.dfns_budget_per_minute("reads") == pytest.approx(60)
    off = Settings.from_env({"SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE": "0"})
    assert off.dfns_budget_per_minute("reads") is None
    assert lane_rates(off) == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIGNGATE_DFNS_ORG_RATE_LIMIT_PER_MINUTE", "-1"),
        ("SIGNGATE_DFNS_BUDGET_SHARE", "0"),
        ("SIGNGATE_DFNS_BUDGET_SHARE", "1.5"),
        ("SIGNGATE_DFNS_WRITE_SHARE", "1"),
    ],
)
def test_a_budget_that_cannot_be_kept_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
