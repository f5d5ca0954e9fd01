"""The `predictor` command: one click group, with commands contributed by one module per concern."""

from __future__ import annotations

import click

from predictor.cli import db, export, keys, models, monitor, rollout, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="predictor-core")
def main() -> None:
    """Serve, query and retrain tabular models exported to ONNX, with a PostgreSQL audit trail."""


for _module in (models, rollout, db, serve, keys, export, monitor):
    for _command in _module.commands:
        main.add_command(_command)
