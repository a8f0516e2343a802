"""gunicorn's settings read .env without exporting it, so a reload (HUP) sees a changed .env."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os
import procurement.gunicorn_conf as conf
print(json.dumps({"workers": conf.workers, "threads": conf.threads,
                  "password_exported": "PROCUREMENT_DB_PASSWORD" in os.environ,
                  "multiproc": os.environ.get("PROMETHEUS_MULTIPROC_DIR")}))
"""


def load_in(directory, env=None):
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_settings_come_from_dotenv_but_secrets_stay_out_of_the_environment(tmp_path):
    (tmp_path / ".env").write_text(
        "PROCUREMENT_DB_PASSWORD=first-password-0123456789\n"
        "PROCUREMENT_WORKERS=3\n"
        "PROCUREMENT_THREADS=2\n"
        f"PROMETHEUS_MULTIPROC_DIR={tmp_path / 'metrics'}\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROCUREMENT_", "PROMETHEUS_"))
    }
    loaded = load_in(tmp_path, env)
    assert loaded["workers"] == 3
    assert loaded["threads"] == 2
    # Workers inherit the master's environment; a password exported there
    # would shadow the .env that a reload is meant to pick up.
    assert loaded["password_exported"] is False
    assert loaded["multiproc"] == str(tmp_path / "metrics")


def test_a_real_environment_variable_still_wins(tmp_path):
    (tmp_path / ".env").write_text("PROCUREMENT_WORKERS=3\nPROMETHEUS_MULTIPROC_DIR=/from/dotenv\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PROCUREMENT_", "PROMETHEUS_"))
    }
    env.update({"PROCUREMENT_WORKERS": "5", "PROMETHEUS_MULTIPROC_DIR": "/from/unit"})
    loaded = load_in(tmp_path, env)
    assert loaded["workers"] == 5
    assert loaded["multiproc"] == "/from/unit"
