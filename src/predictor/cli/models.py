"""`predictor` commands: models (being written)."""

import click

commands: list[click.Command] = []
