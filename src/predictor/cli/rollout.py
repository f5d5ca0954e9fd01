"""`predictor models ...`: what is installed and served, and rolling a version out and back.

`add` places a checked bundle in the deployment's model store (served by every replica that shares
it); `promote` points an alias (`production` by default, `shadow` for a challenger) at a version once it
loads and reproduces its golden set; `rollback` points it back; every move is kept in the database's
alias history with the OS user who made it. Running servers apply a move within `watch_interval`.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from predictor.cli.common import domain_errors
from predictor_core import PRODUCTION, AliasChange, PredictorError

if TYPE_CHECKING:
    from predictor.wiring import Wiring
    from predictor_core import ModelLifecycle

__all__ = ["commands", "models"]

T = TypeVar("T")
alias_option = click.option("--alias", default=PRODUCTION, show_default=True, help="The alias to move.")


def _with_lifecycle(work: Callable[[ModelLifecycle], Awaitable[T]]) -> T:
    """Run `work` with the lifecycle of a started wiring (the database holds the aliases)."""
    from predictor.settings import Settings
    from predictor.wiring import Wiring

    async def main() -> T:
        wiring = Wiring(Settings.load(record=True))
        assert wiring.lifecycle is not None
        await wiring.start()
        try:
            return await work(wiring.lifecycle)
        finally:
            await wiring.close()

    return asyncio.run(main())


def _said(change: AliasChange) -> str:
    unset = "(none: newest)" if change.alias == PRODUCTION else "(none)"  # only production falls back
    before = change.from_version or unset
    after = change.to_version or unset
    return f"{change.name} {change.alias}: {before} -> {after} (by {change.changed_by})"


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """Installed model versions and their aliases; with no command, the same as `models list`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_models)


@models.command("list")
@domain_errors
def list_models() -> None:
    """Every installed version: task, held-out metrics, aliases, which one serves, where it runs."""
    from rich.console import Console
    from rich.table import Table

    from predictor.settings import Settings
    from predictor.wiring import Wiring

    wiring = Wiring(Settings.load())
    note = _read_aliases(wiring)
    registry = wiring.registry
    table = Table(
        "model", "version", "aliases", "task", "metrics (held-out)", "provider", title="installed models"
    )
    for entry in registry.catalogue():
        for manifest in entry.versions:
            described = registry.describe(manifest.name, manifest.version)
            if described.execution is None:
                provider = f"[red]cannot load: {described.load_error}[/red]"
            else:
                nodes = ", ".join(
                    f"{p.removesuffix('ExecutionProvider')} {n}"
                    for p, n in described.execution.nodes_per_provider.items()
                )
                provider = f"{described.execution.providers[0]} (nodes: {nodes})"
            metrics = ", ".join(
                f"{k} {v:.3g}" for k, v in manifest.metrics.items() if k != "parity_max_abs_diff"
            )
            default = " (default)" if manifest.name == registry.default_model else ""
            serving = " (serving)" if described.current else ""
            table.add_row(
                manifest.name + default,
                manifest.version + serving,
                ", ".join(described.aliases),
                str(manifest.task),
                metrics,
                provider,
            )
    console = Console()
    console.print(table)
    if note:
        console.print(note)


def _read_aliases(wiring: Wiring) -> str:
    """Apply the database's aliases to the registry; a note when they cannot be read."""
    if wiring.lifecycle is None:
        return "aliases not shown: recording is off, and aliases live in the database"
    lifecycle = wiring.lifecycle

    async def read() -> None:
        await wiring.start()
        try:
            await lifecycle.sync()
        finally:
            await wiring.close()

    try:
        asyncio.run(read())
    except PredictorError as exc:
        return f"aliases not shown: {exc}"
    return ""


@models.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@domain_errors
def add(bundle: Path) -> None:
    """Check BUNDLE (hash, manifest, opsets, signature) and place it in the model store."""
    from predictor.settings import Settings
    from predictor_onnx import install_bundle

    store = Settings.load().resolved_model_store()
    manifest, target, placed = install_bundle(bundle, store)
    state = "added" if placed else "already there, unchanged"
    click.echo(f"{manifest.name} {manifest.version} {state}: {target}")


@models.command()
@click.argument("name")
@click.argument("version")
@alias_option
@domain_errors
def promote(name: str, version: str, alias: str) -> None:
    """Point ALIAS of NAME at VERSION once it loads and reproduces its golden set."""
    change = _with_lifecycle(lambda life: life.move(name, alias, version, by=_user()))
    click.echo(_said(change))


@models.command()
@click.argument("name")
@alias_option
@domain_errors
def rollback(name: str, alias: str) -> None:
    """Point ALIAS of NAME back at the version it named before its latest change."""
    change = _with_lifecycle(lambda life: life.rollback(name, alias, by=_user()))
    click.echo(_said(change))


@models.command()
@click.argument("name")
@click.argument("alias")
@domain_errors
def unalias(name: str, alias: str) -> None:
    """Remove ALIAS of NAME (without `production`, the name serves its newest version)."""
    change = _with_lifecycle(lambda life: life.remove(name, alias, by=_user()))
    click.echo(_said(change))


@models.command()
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@domain_errors
def history(name: str, alias: str | None, limit: int) -> None:
    """The latest alias changes of NAME, newest first: when, which alias, from, to, by whom."""
    for change in _with_lifecycle(lambda life: life.history(name, alias, limit=limit)):
        click.echo(f"{change.changed_at.isoformat(timespec='seconds')}  {_said(change)}")


def _user() -> str:
    """Who moves an alias, for its history: the OS user, or the uid where it has no name."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # an arbitrary uid with no passwd entry (OpenShift, `podman run --user`)
        return f"os:uid={os.getuid()}"


commands: list[click.Command] = [models]
