import os

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
        ({"PREDICTOR_INFERENCE": "bogus"}, "(PREDICTOR_INFERENCE); one of: inline, batch, thread, "),
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


def test_settings_are_handed_over_whole_in_a_private_file(tmp_path):
    config = tmp_path / "predictor.toml"
    config.write_text("max_batch = 7\nmodel_dirs = ['/srv/models']\n")
    settings = Settings.load(
        {"DATABASE_URL": "postgresql://u:s3cret-Pa55@h/db"}, file=config, model="penguins", workers=2
    )
    with settings.hand_over() as environ:
        [(name, path)] = environ.items()
        assert name == "PREDICTOR_SERVE_SETTINGS_FILE"
        assert "s3cret-Pa55" not in path  # (a random temporary name can hold "pw": CI once drew one)
        assert os.stat(path).st_mode & 0o077 == 0  # the password stays out of the environment
        assert Settings.handed_over(environ) == settings
    assert not os.path.exists(path)
    assert Settings.handed_over({}) is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"port": "eighty"}')
    for value in (str(bad), str(tmp_path / "missing.json")):
        with pytest.raises(ConfigurationError, match="PREDICTOR_SERVE_SETTINGS_FILE"):
            Settings.handed_over({"PREDICTOR_SERVE_SETTINGS_FILE": value})


def test_secrets_come_from_files(tmp_path):
    url_file, password_file = tmp_path / "database_url", tmp_path / "db_password"
    url_file.write_text("postgresql://predictor@db:5432/predictor\n")
    password_file.write_text("p@ss:w/rd\n")  # compose and Kubernetes secret files often end in a newline
    env = {"DATABASE_URL_FILE": str(url_file), "PREDICTOR_DATABASE_PASSWORD_FILE": str(password_file)}
    settings = Settings.load(env)
    resolved = settings.resolved_database_url()
    assert resolved == "postgresql+asyncpg://predictor:p%40ss%3Aw%2Frd@db:5432/predictor"
    from sqlalchemy.engine import make_url

    assert make_url(resolved).password == "p@ss:w/rd"
    assert "p@ss" not in repr(settings)
    assert "p%40ss" not in repr(settings)
    assert settings.redacted_database_url() == "postgresql+asyncpg://predictor:***@db:5432/predictor"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db/p", "postgresql+asyncpg://app:***@db/p"),
        ("postgresql://:s3cret@db/p", "postgresql+asyncpg://:***@db/p"),
        ("postgresql://app@db/p?password=s3cret", "postgresql+asyncpg://app@db/p?password=***"),
        (
            "postgresql://app@db/p?sslpassword=s3cret&application_name=x",
            "postgresql+asyncpg://app@db/p?application_name=x&sslpassword=***",
        ),
    ],
    ids=["user-password", "empty-user", "query-password", "query-sslpassword"],
)
def test_no_form_of_the_database_password_is_shown(url: str, shown: str) -> None:
    settings = Settings.load({"DATABASE_URL": url})
    assert settings.redacted_database_url() == shown
    assert "s3cret" not in repr(settings)


def test_an_unparseable_url_keeps_no_credentials() -> None:
    from predictor_sql import redacted_url

    assert redacted_url("weird:://u:s3cret@h/db?password=s3cret") == "weird:://***@h/db"


def test_any_variable_has_a_file_form(tmp_path):
    port_file = tmp_path / "port"
    port_file.write_text("7860")
    assert Settings.load({"PREDICTOR_PORT_FILE": str(port_file)}).port == 7860


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"DATABASE_URL": "postgresql://h/db", "DATABASE_URL_FILE": "/run/secrets/url"},
            "both DATABASE_URL and DATABASE_URL_FILE are set",
        ),
        (
            {"PREDICTOR_DATABASE_PASSWORD_FILE": "/nonexistent/pw"},
            "cannot read PREDICTOR_DATABASE_PASSWORD_FILE /nonexistent/pw: No such file",
        ),
        ({"PREDICTOR_DATABASE_PASSWORD": "pw"}, "database_password is set but the database is SQLite"),
        (
            {"DATABASE_URL": "sqlite:///x.db", "PREDICTOR_DATABASE_PASSWORD": "pw"},
            "database_password is set but the database is SQLite",
        ),
        (
            {"DATABASE_URL": "postgresql://u:one@h/db", "PREDICTOR_DATABASE_PASSWORD": "two"},
            "password is given twice",
        ),
    ],
)
def test_bad_secret_settings_say_which_and_why(env, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        Settings.load(env)


def test_an_unwritable_data_directory_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    with pytest.raises(ConfigurationError, match=r"cannot create .* set DATABASE_URL, or XDG_DATA_HOME"):
        Settings.load({}).resolved_database_url()


def test_cors_is_off_by_default_and_origins_are_comma_separated():
    assert Settings.load({}).cors_origins == ()
    env = {"PREDICTOR_CORS_ORIGINS": "https://app.example, http://localhost:3000,"}
    assert Settings.load(env).cors_origins == ("https://app.example", "http://localhost:3000")
    assert Settings.load({"PREDICTOR_CORS_ORIGINS": "*"}).cors_origins == ("*",)


@pytest.mark.parametrize(
    "origin", ["https://app.example/", "app.example", "https://app.example/path", "ftp://a"]
)
def test_a_cors_origin_is_scheme_host_and_port_only(origin):
    with pytest.raises(ConfigurationError, match="is not an origin"):
        Settings.load({"PREDICTOR_CORS_ORIGINS": origin})


@pytest.mark.parametrize(
    ("host", "auth", "required"),
    [
        ("127.0.0.1", "auto", False),
        ("127.0.0.2", "auto", False),
        ("localhost", "auto", False),
        ("::1", "auto", False),
        ("[::1]", "auto", False),
        ("127.0.0.1", "required", True),
        ("0.0.0.0", "auto", True),
        ("::", "auto", True),
        ("10.0.0.5", "auto", True),
        ("predictor.internal", "auto", True),
    ],
)
def test_api_keys_are_required_beyond_loopback_or_when_asked(host, auth, required):
    assert Settings.load({"PREDICTOR_HOST": host, "PREDICTOR_AUTH": auth}).auth_required is required


def test_auth_takes_only_auto_or_required_and_the_redis_password_is_hidden():
    with pytest.raises(ConfigurationError, match="PREDICTOR_AUTH"):
        Settings.load({"PREDICTOR_AUTH": "off"})
    settings = Settings.load({"PREDICTOR_REDIS_URL": "redis://:s3cret@cache:6379/0"})
    assert settings.redis_url == "redis://:s3cret@cache:6379/0"
    assert "s3cret" not in repr(settings)
    assert "redis://:***@cache:6379/0" in repr(settings)
