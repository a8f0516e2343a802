"""The procurement command and the configuration checks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from procurement import __version__
from procurement.cli import main
from procurement.config_manager import SETTINGS, ConfigManager

APP_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for setting in SETTINGS:
        monkeypatch.delenv(setting.key, raising=False)
    return tmp_path


def test_defaults_are_the_manuals(no_dotenv):
    cfg = ConfigManager()
    assert (cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user) == (
        "localhost",
        5432,
        "procurement_db",
        "procurement_user",
    )
    assert (cfg.pool_min, cfg.pool_max, cfg.pool_timeout) == (5, 20, 30)
    assert cfg.cache_ttls == {
        "default": 300,
        "supplier_info": 3600,
        "order_list": 60,
        "performance_data": 1800,
    }
    assert cfg.cache_max_size == 1000
    assert cfg.log_file == "/var/log/procurement/procurement.log"
    assert cfg.bind == "127.0.0.1:8000"
    assert cfg.cors_origins == []
    assert [str(n) for n in cfg.metrics_allowed_networks] == ["127.0.0.0/8", "::1/128"]


def test_dotenv_is_read_and_environment_wins(no_dotenv, monkeypatch):
    (no_dotenv / ".env").write_text("PROCUREMENT_DB_HOST=db.internal\nPROCUREMENT_DB_PORT=6543\n")
    monkeypatch.setenv("PROCUREMENT_DB_PORT", "7000")
    cfg = ConfigManager()
    assert cfg.db_host == "db.internal"
    assert cfg.db_port == 7000


def valid_env(tmp_path):
    return {
        "PROCUREMENT_DB_PASSWORD": "pw",
        "PROCUREMENT_SECRET_KEY": "s" * 32,
        "PROCUREMENT_LOG_FILE": str(tmp_path / "p.log"),
    }


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"PROCUREMENT_DB_PORT": "http"}, "PROCUREMENT_DB_PORT"),
        ({"PROCUREMENT_DB_POOL_MIN": "30"}, "POOL_MIN is larger"),
        ({"PROCUREMENT_SECRET_KEY": "short"}, "PROCUREMENT_SECRET_KEY"),
        ({"PROCUREMENT_DB_PASSWORD": ""}, "PROCUREMENT_DB_PASSWORD"),
        ({"PROCUREMENT_LOG_LEVEL": "LOUD"}, "PROCUREMENT_LOG_LEVEL"),
        ({"PROCUREMENT_REDIS_URL": "http://x"}, "PROCUREMENT_REDIS_URL"),
        ({"PROCUREMENT_METRICS_ALLOWED_NETWORKS": "10.0.0.0/33"}, "ALLOWED_NETWORKS"),
        ({"PROCUREMENT_DB_SSLMODE": "maybe"}, "SSLMODE"),
        ({"PROCUREMENT_LOG_FILE": "/nonexistent-dir/x.log"}, "PROCUREMENT_LOG_FILE"),
        ({"PROCUREMENT_BIND": "8000"}, "PROCUREMENT_BIND"),
        ({"PROCUREMENT_DB_PREPARED_STATEMENTS": "sometimes"}, "PREPARED_STATEMENTS"),
    ],
)
def test_config_validate_reports_problems_and_exits_nonzero(no_dotenv, override, fragment):
    env = {**valid_env(no_dotenv), **override}
    assert any(fragment in p for p in ConfigManager(environ=env, env_file=None).validate())
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["config", "validate"], env=env)
    assert result.exit_code == 1
    assert fragment in result.output


def test_config_validate_passes_on_valid_config(no_dotenv):
    from click.testing import CliRunner

    assert ConfigManager(environ=valid_env(no_dotenv), env_file=None).validate() == []
    result = CliRunner().invoke(main, ["config", "validate"], env=valid_env(no_dotenv))
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


MANUAL_ONE_LINER = "from config_manager import ConfigManager; print(ConfigManager().validate())"


def one_liner_problems(directory: Path) -> list:
    """Run the manual's troubleshooting line in ``directory`` and read the list it prints."""
    out = subprocess.run(
        [sys.executable, "-c", MANUAL_ONE_LINER],
        capture_output=True,
        text=True,
        cwd=directory,
        check=True,
    ).stdout
    problems = ast.literal_eval(out.strip())
    assert isinstance(problems, list), out
    return problems


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("PROCUREMENT_DB_PORT=http", "PROCUREMENT_DB_PORT"),
        ("PROCUREMENT_SECRET_KEY=short", "PROCUREMENT_SECRET_KEY is missing or shorter"),
        ("PROCUREMENT_LOG_LEVEL=LOUD", "PROCUREMENT_LOG_LEVEL must be one of"),
    ],
)
def test_manual_troubleshooting_one_liner_reads_the_env_file(no_dotenv, line, fragment):
    """The line reads .env from the working directory, as on the host, and lists its problems."""
    good = (
        "PROCUREMENT_DB_PASSWORD=pw\n"
        f"PROCUREMENT_SECRET_KEY={'k' * 32}\n"
        f"PROCUREMENT_LOG_FILE={no_dotenv / 'procurement.log'}\n"
    )
    (no_dotenv / ".env").write_text(good)
    assert one_liner_problems(no_dotenv) == []

    (no_dotenv / ".env").write_text(good + line + "\n")
    problems = one_liner_problems(no_dotenv)
    assert len(problems) == 1 and fragment in problems[0], problems
    # A problem names the setting, never a secret's value.
    assert "k" * 32 not in str(problems) and "=pw" not in str(problems)


def test_env_example_documents_every_key():
    text = (APP_DIR / ".env.example").read_text()
    lines = text.splitlines()
    for setting in SETTINGS:
        index = next(
            (i for i, line in enumerate(lines) if line.startswith(setting.key + "=")), None
        )
        assert index is not None, f"{setting.key} missing from .env.example"
        assert lines[index - 1].startswith("#"), f"{setting.key} has no comment"


def test_version(runner):
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output and __version__ != "0+unknown"


def test_users_create_prints_token_once(runner, app):
    result = runner.invoke(main, ["users", "create", "--name", "deploy", "--role", "admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json()["role"] == "admin"
    again = runner.invoke(main, ["users", "create", "--name", "deploy", "--role", "admin"])
    assert again.exit_code != 0


def test_users_deactivate_activate_new_token_and_revoke_take_effect_at_once(runner, app, api):
    def me(token):
        return app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})

    def cli(*args):
        return runner.invoke(main, ["users", *args, "--name", "rob"])

    old = api.tokens["rob"]
    assert me(old).status_code == 200
    assert cli("deactivate").exit_code == 0
    assert me(old).status_code == 401
    assert cli("activate").exit_code == 0
    assert me(old).status_code == 200
    issued = cli("new-token")
    assert issued.exit_code == 0, issued.output
    new = issued.stdout.strip().splitlines()[-1]
    assert me(old).status_code == 401 and me(new).get_json()["name"] == "rob"
    assert cli("revoke-token").exit_code == 0
    assert me(new).status_code == 401
    unknown = runner.invoke(main, ["users", "deactivate", "--name", "nobody"])
    assert unknown.exit_code != 0 and "user nobody does not exist" in unknown.output


def test_users_ensure_is_idempotent_and_takes_token_from_env(runner, app):
    vault_token = "v" * 43
    first = runner.invoke(
        main,
        ["users", "ensure", "--name", "ops", "--role", "admin"],
        env={"PROCUREMENT_NEW_TOKEN": vault_token},
    )
    assert first.exit_code == 0, first.output
    # Click < 8.2 mixes stderr into stdout: the token is the last line either way.
    assert first.stdout.strip().splitlines()[-1] == vault_token
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {vault_token}"})
    assert me.get_json()["name"] == "ops"
    second = runner.invoke(
        main,
        ["users", "ensure", "--name", "ops", "--role", "admin"],
        env={"PROCUREMENT_NEW_TOKEN": vault_token},
    )
    assert second.exit_code == 0
    assert second.stdout.strip() == "exists"
    assert vault_token not in second.output
    generated = runner.invoke(
        main,
        ["users", "ensure", "--name", "bot", "--role", "buyer"],
        env={"PROCUREMENT_NEW_TOKEN": ""},
    )
    assert generated.exit_code == 0
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", generated.stdout.strip().splitlines()[-1])


def test_db_commands(no_dotenv, pg, database):
    from click.testing import CliRunner

    env = {**valid_env(no_dotenv), **pg.settings()}
    runner = CliRunner()
    current = runner.invoke(main, ["db", "current"], env=env)
    assert current.exit_code == 0, current.output
    assert current.output.strip() == "0006"
    down = runner.invoke(main, ["db", "downgrade"], env=env)
    assert down.exit_code == 0, down.output
    assert "0005" in down.output
    up = runner.invoke(main, ["db", "upgrade"], env=env)
    assert up.exit_code == 0, up.output
    assert up.output.splitlines() == ["migrated from 0005", "database at 0006"]
    again = runner.invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == ["database at 0006"]
    head = runner.invoke(main, ["db", "head"], env=env)
    assert head.exit_code == 0, head.output
    assert head.output.strip() == "0006"


def test_a_rotated_password_falls_back_to_the_previous_one_until_the_role_has_the_new_one(
    make_app, settings
):
    """A rotation gives the service its new password before the role gets it: the previous one still logs in."""
    current = settings["PROCUREMENT_DB_PASSWORD"]
    ahead = make_app(
        PROCUREMENT_DB_PASSWORD="rotated-not-yet-set", PROCUREMENT_DB_PASSWORD_PREVIOUS=current
    )
    assert ahead.test_client().get("/health/ready").status_code == 200
    alone = make_app(PROCUREMENT_DB_PASSWORD="rotated-not-yet-set")
    assert alone.test_client().get("/health/ready").status_code == 503


def test_migrations_log_in_with_the_previous_password_too(no_dotenv, pg, database):
    from click.testing import CliRunner

    env = {
        **pg.settings(),
        **valid_env(no_dotenv),
        "PROCUREMENT_DB_PASSWORD": "rotated-not-yet-set",
        "PROCUREMENT_DB_PASSWORD_PREVIOUS": pg.settings()["PROCUREMENT_DB_PASSWORD"],
    }
    runner = CliRunner()
    for command in (["db", "current"], ["db", "upgrade"]):
        result = runner.invoke(main, command, env=env)
        assert result.exit_code == 0, result.output
        assert "0006" in result.output
    refused = runner.invoke(
        main, ["db", "current"], env={**env, "PROCUREMENT_DB_PASSWORD_PREVIOUS": ""}
    )
    assert refused.exit_code != 0
