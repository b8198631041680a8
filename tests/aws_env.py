"""Run the ``aws`` backend's code against the local emulator, never against AWS.

boto3 honours AWS_ENDPOINT_URL for every client made without an explicit endpoint (which is
what the aws backend does), so with it pointing at the moto server the aws code paths run
unchanged against the emulator. Shared config and credential files are emptied and the
instance metadata service disabled, so no real credentials or endpoints can be picked up.
"""

from __future__ import annotations

from pathlib import Path

from labhelpers.infra.config import LOCAL_CREDENTIALS, LabConfig


def isolate_from_aws(monkeypatch, tmp_path: Path) -> None:
    """No profile, no config or credential file, no instance metadata: nothing real."""
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "LAB_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def aws_cfg_on_emulator(monkeypatch, tmp_path: Path, emulator_cfg: LabConfig,
                        prefix: str) -> LabConfig:
    """A backend="aws" config whose boto3 clients all reach ``emulator_cfg``'s moto server."""
    isolate_from_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator_cfg.endpoint_url or "")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LOCAL_CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LOCAL_CREDENTIALS["aws_secret_access_key"])
    assert emulator_cfg.endpoint_url and "127.0.0.1" in emulator_cfg.endpoint_url
    return LabConfig(backend="aws", prefix=prefix, region=emulator_cfg.region,
                     home=emulator_cfg.home, emulator_port=emulator_cfg.emulator_port)
