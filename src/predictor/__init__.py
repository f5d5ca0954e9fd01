"""Composition root: settings, wiring, the CLI and the notebook facade."""
