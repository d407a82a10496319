"""capacity/rotation.py and its use in infra/data.py: credentials rotate on their schedule, at the
first deploy of each period, and the declared state moves only when a period turns."""

from __future__ import annotations

import datetime

import pytest

from capacity.rotation import ROTATION_DATE_ENV, effective_generation, rotation_date

SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
PASSWORD = "random:index/randomPassword:RandomPassword"


def test_the_generation_counts_whole_periods_since_1970():
    # 2026-12-01 is day 20,788 (UTC) since 1970-01-01: 692 whole 30-day periods; the next period
    # starts on day 20,790, 2026-12-03
    day = datetime.date(2026, 12, 1)
    assert effective_generation(1, 30, day) == 693
    assert effective_generation(1, 30, datetime.date(2026, 12, 2)) == 693
    assert effective_generation(1, 30, datetime.date(2026, 12, 3)) == 694
    assert effective_generation(5, 30, day) == 697  # raising credentialsGeneration still rotates at once
    assert effective_generation(1, None, day) == 1  # no schedule: only credentialsGeneration counts
    assert effective_generation(1, 1, day) == 20789


def test_the_day_is_pinned_by_the_environment_or_is_today(monkeypatch):
    monkeypatch.setenv(ROTATION_DATE_ENV, "2027-01-15")
    assert rotation_date() == datetime.date(2027, 1, 15)
    monkeypatch.delenv(ROTATION_DATE_ENV)
    assert rotation_date() == datetime.datetime.now(datetime.UTC).date()


def _credentials(program) -> tuple[dict, dict, dict]:
    """The logins the apps use, each generated password's keepers, and the stack output."""
    keepers = {r.name: r.inputs["keepers"]["generation"] for r in program.of_type(PASSWORD)
               if r.name.startswith(("database-roles-", "redis-user-sessions"))}
    return program.outputs["databaseLogins"], keepers, program.outputs["credentialsGenerations"]


def _on(run_stack_with, monkeypatch, day: str, overrides: dict | None = None):
    monkeypatch.setenv(ROTATION_DATE_ENV, day)
    return run_stack_with("dev", overrides or {})


def test_a_deploy_in_the_same_period_changes_nothing_and_the_next_period_rotates(run_stack_with, monkeypatch):
    first = _credentials(_on(run_stack_with, monkeypatch, "2026-12-01"))
    same = _credentials(_on(run_stack_with, monkeypatch, "2026-12-02"))
    assert first == same
    logins, keepers, generations = first
    assert generations == {"postgres": 693, "redis": 693}
    assert logins == {"app": "app_a", "migrator": "migrator_a", "pgbouncer_auth": "pgbouncer_auth_a"}  # odd
    logins2, keepers2, generations2 = _credentials(_on(run_stack_with, monkeypatch, "2026-12-03"))
    assert generations2 == {"postgres": 694, "redis": 694}
    # the other login of each purpose gets the new password; Valkey's even slot is drawn anew and
    # the odd one (still valid for pods not yet replaced) stays as it was
    assert logins2 == {"app": "app_b", "migrator": "migrator_b", "pgbouncer_auth": "pgbouncer_auth_b"}
    assert keepers2["database-roles-app-password"] == "694"
    assert keepers["redis-user-sessions-password"] == keepers2["redis-user-sessions-password"] == "693"
    assert keepers2["redis-user-sessions-password-b"] == "694"


def test_without_a_schedule_only_the_configured_generation_counts(run_stack_with, monkeypatch):
    off = {"cofounder:postgres": {"credentialsRotationDays": None}, "cofounder:redis": {"credentialsRotationDays": None}}
    logins, keepers, generations = _credentials(_on(run_stack_with, monkeypatch, "2026-12-03", off))
    assert generations == {"postgres": 1, "redis": 1}
    assert logins["app"] == "app_a" and keepers["database-roles-app-password"] == "1"


@pytest.mark.parametrize("days", [0, 366])
def test_a_rotation_period_out_of_bounds_is_a_config_error(run_stack_with, days):
    from infra.config import ConfigError
    with pytest.raises(ConfigError, match=rf"cofounder:postgres\.credentialsRotationDays = {days} is not allowed"):
        run_stack_with("dev", {"cofounder:postgres": {"credentialsRotationDays": days}})
