"""The `fitplan` command: parse, call fitplan.solver, render. No formula lives here. Every
command returns its exit code.

Exit codes: 0 success (a plan was found / it fits), 2 bad input, 3 nothing fits."""

from __future__ import annotations

import sys

import click

from fitplan.solver.errors import FitplanError

from .exit_codes import EXIT_BAD_INPUT


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fitplan")
def cli() -> None:
    """Which fine-tuning configuration fits on these GPUs, and which of those trains fastest."""


def _register() -> None:
    """Every command, explicitly (a command that fails to import fails loudly)."""
    from . import check, estimate, listing, plot, recommend, serve, sweep, trace

    for command in (estimate.estimate_command, recommend.recommend_command, check.check_command,
                    sweep.sweep_command, trace.trace_command, listing.models_command, listing.gpus_command):
        cli.add_command(command)
    cli.add_command(serve.serve_command)
    cli.add_command(plot.plot_command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        result = cli.main(args=argv, prog_name="fitplan", standalone_mode=False)
    except FitplanError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return EXIT_BAD_INPUT
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except SystemExit as exc:  # --help and --version end with SystemExit(0)
        return exc.code if isinstance(exc.code, int) else 1
    return result if isinstance(result, int) else 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry_point()
