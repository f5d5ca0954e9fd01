"""`predictor keys ...`: API keys for the HTTP API: create one (shown once), list them, revoke one.

Keys live in the database the server records into (the same `DATABASE_URL`), so every worker and replica
sees a new key at once and refuses a revoked one within about a second. The full key is printed once, by
`create`, alone on standard output (its last line), so a script can capture it:
`KEY=$(predictor keys create --name ci --scopes predict)`; what it says about the key goes to standard
error. Only the SHA-256 of its secret is stored: a lost key cannot be shown again; create another one and
revoke the lost one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from predictor.cli.common import domain_errors
from predictor_core import ApiKey, KeyStore, RateLimit, new_key, parse_rate

__all__ = ["commands", "keys"]

T = TypeVar("T")


def _with_keys(work: Callable[[KeyStore], Awaitable[T]]) -> T:
    """Run `work` with the key store of a started wiring (the database holds the keys)."""
    from predictor.settings import Settings
    from predictor.wiring import Wiring

    async def main() -> T:
        wiring = Wiring(Settings.load(record=True))
        assert wiring.keys is not None
        await wiring.start(watch=False)
        try:
            return await work(wiring.keys)
        finally:
            await wiring.close()

    return asyncio.run(main())


def _said(key: ApiKey) -> str:
    limit = "not rate limited" if key.rate is None else f"rate {key.rate}"
    state = "active" if key.revoked_at is None else f"revoked {key.revoked_at.isoformat(timespec='seconds')}"
    return f"{key.name} (id {key.id}): scopes {','.join(sorted(key.scopes))}, {limit}, {state}"


@click.group()
def keys() -> None:
    """API keys: create (the key is shown once), list, revoke."""


@keys.command()
@click.option("--name", required=True, help="A unique name: who or what uses the key.")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated, from: predict, read, feedback, admin (none implies another)",
)
@click.option("--rate", default=None, help="Rate limit, e.g. 50/s, 600/min, 10000/h [default: none].")
@click.option(
    "--burst", type=click.IntRange(min=1), default=None, help="Requests at once [default: the rate's count]."
)
@domain_errors
def create(name: str, scopes: str, rate: str | None, burst: int | None) -> None:
    """Create a key and print it once, alone on the last line of standard output."""
    if burst is not None and rate is None:
        raise click.UsageError("--burst needs --rate")
    limit: RateLimit | None = None if rate is None else parse_rate(rate, burst)
    key, token = new_key(name, scopes, rate=limit, now=dt.datetime.now(dt.UTC))
    _with_keys(lambda store: store.create(key))
    click.echo(f"created {_said(key)}", err=True)
    click.echo("the key follows; it is shown only this once (only a hash of it is stored):", err=True)
    click.echo(token)


@keys.command("list")
@domain_errors
def list_keys() -> None:
    """Every key, oldest first: name, id, scopes, rate limit, state. Never a secret."""
    found = _with_keys(lambda store: store.list_keys())
    if not found:
        click.echo("no API keys; create one with `predictor keys create --name NAME --scopes predict,read`")
        return
    for key in found:
        click.echo(f"{key.created_at.isoformat(timespec='seconds')}  {_said(key)}")


@keys.command()
@click.argument("name")
@domain_errors
def revoke(name: str) -> None:
    """Revoke the key NAME: every server refuses it within about a second. It cannot be undone."""
    key = _with_keys(lambda store: store.revoke(name, dt.datetime.now(dt.UTC)))
    click.echo(f"revoked {_said(key)}")


commands: list[click.Command] = [keys]
