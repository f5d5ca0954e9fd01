import pytest

from predictor.settings import Settings
from predictor_core import ConfigurationError


def test_defaults_need_no_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings.load({})
    assert settings.model == "breast_cancer"
    assert settings.device == "cpu"
    assert settings.resolved_database_url().startswith("sqlite+aiosqlite:///")
    assert settings.resolved_database_url().endswith("predictor-core/predictions.db")


def test_environment_then_overrides(tmp_path):
    config = tmp_path / "predictor.toml"
    config.write_text('model = "penguins"\nport = 7000\nmodel_dirs = ["/a"]\n')
    env = {
        "PREDICTOR_CONFIG": str(config),
        "PREDICTOR_PORT": "9000",
        "PREDICTOR_MODEL_DIRS": "/b:/c",
        "DATABASE_URL": "postgresql://app:secret@db:5432/predictions",
        "PREDICTOR_RECORD": "false",
    }
    settings = Settings.load(env, workers=3, threads=None)
    assert settings.model == "penguins"
    assert settings.port == 9000
    assert settings.model_dirs == ("/b", "/c")
    assert settings.workers == 3
    assert settings.record is False
    assert settings.resolved_database_url() == "postgresql+asyncpg://app:secret@db:5432/predictions"
    assert "secret" not in repr(settings)
    assert "app:***@db" in settings.redacted_database_url()


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"PREDICTOR_PORT": "eighty"}, "port (PREDICTOR_PORT)"),
        ({"PREDICTOR_PORT": "70000"}, "port must be between"),
        ({"PREDICTOR_DEVICE": "tpu"}, "device (PREDICTOR_DEVICE)"),
        ({"PREDICTOR_WORKERS": "0"}, "workers must be at least 1"),
        ({"PREDICTOR_THREADS": "0"}, "threads must be at least 1"),
        ({"PREDICTOR_CONFIG": "/nonexistent/predictor.toml"}, "cannot read settings file"),
    ],
)
def test_bad_settings_say_which_and_why(env, fragment):
    with pytest.raises(ConfigurationError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        Settings.load(env)


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    config = tmp_path / "predictor.toml"
    config.write_text("modle = 'typo'\n")
    with pytest.raises(ConfigurationError, match="modle"):
        Settings.load({}, file=config)


def test_sqlite_urls_get_the_async_driver():
    assert (
        Settings(database_url="sqlite:///tmp/x.db").resolved_database_url() == "sqlite+aiosqlite:///tmp/x.db"
    )
    assert Settings(database_url="postgres://h/db").resolved_database_url() == "postgresql+asyncpg://h/db"


def test_settings_are_handed_over_whole_as_one_value(tmp_path):
    config = tmp_path / "predictor.toml"
    config.write_text("max_batch = 7\nmodel_dirs = ['/srv/models']\n")
    settings = Settings.load(
        {"DATABASE_URL": "postgresql://u:pw@h/db"}, file=config, model="penguins", workers=2
    )
    environ = settings.hand_over()
    assert list(environ) == ["PREDICTOR_SERVE_SETTINGS"]
    assert Settings.handed_over(environ) == settings
    assert Settings.handed_over({}) is None
    with pytest.raises(ConfigurationError, match="PREDICTOR_SERVE_SETTINGS"):
        Settings.handed_over({"PREDICTOR_SERVE_SETTINGS": '{"port": "eighty"}'})
    with pytest.raises(ConfigurationError, match="PREDICTOR_SERVE_SETTINGS"):
        Settings.handed_over({"PREDICTOR_SERVE_SETTINGS": "{not json"})
