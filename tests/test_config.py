import pytest

from labhelpers.errors import ConfigError
from labhelpers.infra.config import LabConfig, load_config


def test_names_derive_from_prefix(tmp_path):
    cfg = LabConfig(prefix="alice", home=tmp_path)
    names = [cfg.stack_name, cfg.input_stream, cfg.scores_stream, cfg.topic_name,
             cfg.inbox_queue, cfg.dead_letter_stream, cfg.artifacts_bucket]
    assert all(n.startswith("alice-") for n in names), names
    other = LabConfig(prefix="bob", home=tmp_path)
    assert not set(names) & {other.input_stream, other.stack_name}, "two students collide"
    assert cfg.stream_dir(cfg.input_stream) == tmp_path / "alice" / "streams" / "alice-clicks"


@pytest.mark.parametrize("prefix", ["", "ab", "Upper", "1abc", "a_b", "x" * 21])
def test_bad_prefix_is_rejected_with_fix(prefix, tmp_path):
    with pytest.raises(ConfigError, match="Fix: use 3-20 characters"):
        LabConfig(prefix=prefix, home=tmp_path)


def test_bad_backend_lists_valid_options(tmp_path):
    with pytest.raises(ConfigError, match="local, aws"):
        LabConfig(backend="azure", home=tmp_path)


def test_env_and_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_PREFIX", "envlab")
    monkeypatch.setenv("LAB_EMULATOR_PORT", "5123")
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    cfg = load_config()
    assert (cfg.prefix, cfg.emulator_port, cfg.home) == ("envlab", 5123, tmp_path.resolve())
    assert load_config(prefix="kwlab").prefix == "kwlab", "keyword beats environment"
    monkeypatch.setenv("LAB_EMULATOR_PORT", "abc")
    with pytest.raises(ConfigError, match="not a number"):
        load_config()


def test_unknown_setting_is_an_error():
    with pytest.raises(ConfigError, match="Unknown setting"):
        load_config(prefx="typo")


def test_local_endpoint_and_fake_credentials(tmp_path):
    cfg = LabConfig(home=tmp_path, emulator_port=4999)
    assert cfg.endpoint_url == "http://127.0.0.1:4999"
    creds = cfg.session().get_credentials()
    assert creds.access_key == "testing", "local backend must never use real credentials"
    assert LabConfig(backend="aws", home=tmp_path).endpoint_url is None
