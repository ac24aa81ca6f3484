"""The `synth` command line: parses arguments and calls the library (no logic here)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from synth import __version__
from synth.errors import SynthError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="synth")
def cli() -> None:
    """Synthetic anomaly data for industrial visual inspection."""


def _register_commands() -> None:
    from synth.cli import export, gen, info, preview, publish, run, score
    from synth.cli.train import train

    for module in (gen, info, preview, publish, run, score, export):
        cli.add_command(module.command)
    cli.add_command(train)


def run_command_line(group: click.Group, argv: Sequence[str] | None, prog_name: str) -> None:
    """Run a click group; bad input becomes one line on stderr and exit status 2, never a traceback."""
    logging.basicConfig(format=f"{prog_name}: %(message)s", level=logging.WARNING)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = group.main(args=args, prog_name=prog_name, standalone_mode=False, obj={"argv": [prog_name, *args]})
    except SynthError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        sys.exit(error.exit_code or 2)
    except OSError as error:  # a file system refusal no check foresaw: still one line, never a traceback
        click.echo(f"error: {error.strerror or error}" + (f": {error.filename}" if error.filename else ""), err=True)
        sys.exit(2)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def command_words() -> list[str]:
    """The command line being run, word by word (``synth gen --data ...``), for provenance."""
    return list(click.get_current_context().find_root().obj["argv"])


def main(argv: Sequence[str] | None = None) -> None:
    """The `synth` entry point."""
    _register_commands()
    run_command_line(cli, argv, "synth")
