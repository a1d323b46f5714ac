import os
from pathlib import Path

from cdc_verify.config.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "cdc-verify.example.toml"


def test_the_example_config_is_valid_and_complete(monkeypatch):
    for key in list(os.environ):
        if key.startswith("CDC_VERIFY_"):
            monkeypatch.delenv(key)
    settings = load_settings(EXAMPLE)
    assert settings.redis_url.startswith("rediss://")
    assert settings.production == "cdc:comments:production"
    assert settings.http_host == "127.0.0.1"
