from pathlib import Path

import pytest

from sandhaven.config import SETTINGS, Secret, load_settings, sample_config
from sandhaven.config.settings import read_config_file
from sandhaven.errors import ConfigError


def test_defaults_match_the_documented_embedded_defaults():
    s = load_settings(environ={})
    assert s.port == 6080
    assert s.listen_host == "127.0.0.1"
    assert s.base_url == "http://localhost:6080"
    assert s.wildcard_host == "*.localhost:6080"
    assert str(s.data_dir).endswith(".local/share/sandhaven")
    assert s.database.startswith("sqlite:///") and s.database.endswith("sandhaven.sqlite3")
    assert s.signup_policy == "invite"
    assert s.dev is False


def test_file_then_environment_then_flag_take_precedence(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 7001\nlog_level = "debug"\n[smtp]\nhost = "mail.example.org"\n')
    env = {"SANDHAVEN_PORT": "7002", "SANDHAVEN_SMTP_PORT": "2525"}
    s = load_settings(config_file=cfg, environ=env, overrides={"port": "7003"})
    assert s.port == 7003
    assert s.log_level == "debug"
    assert s.smtp_host == "mail.example.org"
    assert s.smtp_port == 2525
    assert load_settings(config_file=cfg, environ=env).port == 7002
    assert load_settings(config_file=cfg, environ={}).port == 7001


def test_config_file_can_be_named_by_environment(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("port = 7010\n")
    assert load_settings(environ={"SANDHAVEN_CONFIG": str(cfg)}).port == 7010


@pytest.mark.parametrize(("env", "needle"), [
    ({"SANDHAVEN_PORT": "x"}, "Setting 'port' has value 'x'"),
    ({"SANDHAVEN_PORT": "70000"}, "must be between 1 and 65535"),
    ({"SANDHAVEN_BASE_URL": "ftp://x"}, "Setting 'base_url'"),
    ({"SANDHAVEN_BASE_URL": "http://x/path"}, "no path"),
    ({"SANDHAVEN_WILDCARD_HOST": "example.org"}, "Setting 'wildcard_host'"),
    ({"SANDHAVEN_DEV": "maybe"}, "not a valid boolean"),
    ({"SANDHAVEN_SIGNUP_POLICY": "everyone"}, "must be one of invite, open"),
    ({"SANDHAVEN_SMTP_SECURITY": "ssl"}, "Setting 'smtp.security'"),
    ({"SANDHAVEN_TRUSTED_PROXIES": "10.0.0.1,nonsense"}, "'nonsense' is not an IP"),
    ({"SANDHAVEN_PORTT": "1"}, "SANDHAVEN_PORTT is not a Sandhaven setting"),
])
def test_bad_values_name_the_setting_and_value(env, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_secret_values_are_masked_in_errors_and_dumps():
    s = load_settings(environ={"SANDHAVEN_SMTP_PASSWORD": "hunter2"})
    assert repr(s.smtp_password) == "Secret('**********')"
    assert isinstance(s.smtp_password, Secret) and s.smtp_password == "hunter2"
    assert "hunter2" not in repr(s.redacted())


@pytest.mark.parametrize(("text", "needle"), [
    ("port = ", "is not valid TOML"),
    ("prot = 1\n", "unknown setting 'prot'"),
    ("[smtp]\nhots = 'x'\n", "unknown setting 'smtp.hots'"),
    ("port = true\n", "not a valid integer"),
])
def test_bad_config_files_are_refused(tmp_path: Path, text, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=cfg, environ={})
    assert needle in str(info.value)


def test_missing_config_file_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(config_file=tmp_path / "nope.toml", environ={})


def test_sample_config_lists_every_setting_and_parses_to_defaults(tmp_path: Path):
    sample = sample_config()
    for setting in SETTINGS:
        assert setting.env in sample, setting.name
    # Uncommenting every line must give a valid config equal to the defaults.
    uncommented = "\n".join(
        line[1:] if line.startswith("#") and "=" in line and not line.startswith("# ") else line
        for line in sample.splitlines())
    cfg = tmp_path / "sample.toml"
    cfg.write_text(uncommented)
    flat = read_config_file(cfg)
    assert set(flat) == {s.name for s in SETTINGS}
    assert load_settings(config_file=cfg, environ={}).port == 6080
