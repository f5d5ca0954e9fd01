"""`predictor` commands: serve (being written)."""

import click

commands: list[click.Command] = []
