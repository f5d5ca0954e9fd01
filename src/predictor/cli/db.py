"""`predictor` commands: db (being written)."""

import click

commands: list[click.Command] = []
