"""``python -m npquant``: the command-line interface (npquant.cli)."""

from npquant.cli import run

run()
