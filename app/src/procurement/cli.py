"""The ``procurement`` command: migrations, users, static files, configuration."""

from __future__ import annotations

import os
import sys

import click
from flask.cli import FlaskGroup, with_appcontext

from procurement import __version__, create_app
from procurement.models import ROLES


def _create_app(*_args, **_kwargs):
    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
@click.version_option(__version__, "--version", prog_name="procurement")
def main() -> None:
    """Procurement service administration."""


# -- database -------------------------------------------------------------
# Groups of plain click commands: FlaskGroup would otherwise build the app
# (and demand a valid configuration) before commands that don't need it.
@main.group(cls=click.Group)
def db() -> None:
    """Schema migrations (additive, safe while old workers still serve)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate up to REVISION (default: the latest). Serialised by an advisory lock.

    Prints "migrated from OLD" first when anything was applied, then "database at NEW".
    """
    from procurement import migrate

    before = migrate.current()
    migrate.upgrade(revision)
    after = migrate.current()
    if after != before:
        click.echo(f"migrated from {before or 'base'}")
    click.echo(f"database at {after}")


@db.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Migrate down to REVISION (default: one step)."""
    from procurement import migrate

    migrate.downgrade(revision)
    click.echo(f"database at {migrate.current() or 'base'}")


@db.command("head")
def db_head() -> None:
    """Print the schema revision this release expects (its Alembic head)."""
    from procurement.health_checker import expected_revision

    click.echo(expected_revision())


@db.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from procurement import migrate

    click.echo(migrate.current() or "base")


# -- users ----------------------------------------------------------------
@main.group()
def users() -> None:
    """API users and their tokens."""


@users.command("create")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@with_appcontext
def users_create(name: str, role: str) -> None:
    """Create a user and print its token (shown only this once)."""
    from procurement.errors import ApiError
    from procurement.services import users as user_service

    try:
        _user, token = user_service.create_user("cli", name, role)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created user {name} ({role})", err=True)
    click.echo(token)


@users.command("ensure")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@with_appcontext
def users_ensure(name: str, role: str) -> None:
    """Create the user unless it exists; idempotent for deploy automation.

    The token comes from PROCUREMENT_NEW_TOKEN when set (so it never shows in
    a process list), otherwise one is generated. It is printed only when the
    user is created; an existing user prints "exists" and nothing secret.
    """
    from procurement.errors import ApiError
    from procurement.services import users as user_service

    try:
        user, token, created = user_service.ensure_user(
            name, role, os.environ.get("PROCUREMENT_NEW_TOKEN") or None
        )
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    if not created:
        if user["role"] != role:
            click.echo(f"warning: {name} exists with role {user['role']}", err=True)
        click.echo("exists")
        return
    click.echo(f"created user {name} ({role})", err=True)
    click.echo(token)


def _as_cli(change):
    """Run a change to a user as the CLI's admin actor; API errors become click errors."""
    from procurement.errors import ApiError

    try:
        return change({"name": "cli", "role": "admin"})
    except ApiError as exc:
        raise click.ClickException(exc.message) from None


def _set_active(name: str, active: bool) -> None:
    from procurement.services import users as user_service

    _as_cli(lambda actor: user_service.set_active(actor, user_service.user_id(name), active))
    click.echo(f"{'activated' if active else 'deactivated'} user {name}", err=True)


@users.command("deactivate")
@click.option("--name", required=True)
@with_appcontext
def users_deactivate(name: str) -> None:
    """Deactivate a user: its token is refused from the next request on, in every worker."""
    _set_active(name, False)


@users.command("activate")
@click.option("--name", required=True)
@with_appcontext
def users_activate(name: str) -> None:
    """Reactivate a deactivated user (with the token it had)."""
    _set_active(name, True)


@users.command("revoke-token")
@click.option("--name", required=True)
@with_appcontext
def users_revoke_token(name: str) -> None:
    """Revoke a user's token without a new one; it is refused from the next request on."""
    from procurement.services import users as user_service

    _as_cli(lambda actor: user_service.revoke_user_token(actor, user_service.user_id(name)))
    click.echo(f"revoked the token of user {name}", err=True)


@users.command("new-token")
@click.option("--name", required=True)
@with_appcontext
def users_new_token(name: str) -> None:
    """Give a user a new token and print it (shown only this once); the old one stops working."""
    from procurement.services import users as user_service

    _user, token = _as_cli(
        lambda actor: user_service.new_user_token(actor, user_service.user_id(name))
    )
    click.echo(f"new token for user {name}", err=True)
    click.echo(token)


# -- static files and configuration ----------------------------------------
@main.group(cls=click.Group)
def static() -> None:
    """Static files of the dashboard."""


@static.command("collect")
@click.argument("dest", type=click.Path(file_okay=False))
def static_collect(dest: str) -> None:
    """Write the fingerprinted static files into DEST for Nginx."""
    from procurement.web import collect_static

    for path in collect_static(dest):
        click.echo(path)


@main.group(cls=click.Group)
def config() -> None:
    """Configuration checks."""


@config.command("validate")
def config_validate() -> None:
    """Print configuration problems; exit 1 when there are any."""
    from procurement.config_manager import ConfigManager

    problems = ConfigManager().validate()
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo("configuration is valid")


if __name__ == "__main__":  # pragma: no cover
    main()
