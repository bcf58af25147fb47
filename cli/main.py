"""The `fitplan` command: parse, call fitplan.solver, render. No formula lives here. Every
command returns its exit code.

Exit codes: 0 success (a plan was found / it fits), 2 bad input, 3 nothing fits."""

from __future__ import annotations

import sys
from typing import Callable

import click

from fitplan.solver.errors import FitplanError

from .exit_codes import EXIT_BAD_INPUT


# Every command, explicitly: name -> (what imports its click command, the first sentence of its
# help). `fitplan --help` lists the commands from this table and imports none of them (each pulls
# in its part of the library: OR-Tools for recommend, the web stack for serve); a command's module
# is imported when it runs. tests/cli/test_main.py checks each sentence against its command.
def _check() -> click.Command:
    from .check import check_command
    return check_command


def _estimate() -> click.Command:
    from .estimate import estimate_command
    return estimate_command


def _gpus() -> click.Command:
    from .listing import gpus_command
    return gpus_command


def _models() -> click.Command:
    from .listing import models_command
    return models_command


def _plot() -> click.Command:
    from .plot import plot_command
    return plot_command


def _recommend() -> click.Command:
    from .recommend import recommend_command
    return recommend_command


def _serve() -> click.Command:
    from .serve import serve_command
    return serve_command


def _sweep() -> click.Command:
    from .sweep import sweep_command
    return sweep_command


def _trace() -> click.Command:
    from .trace import trace_command
    return trace_command


COMMANDS: dict[str, tuple[Callable[[], click.Command], str]] = {
    "check": (_check, "Does an existing LLaMA-Factory training YAML fit on these GPUs?"),
    "estimate": (_estimate, "Per-GPU memory of one configuration, term by term, and whether it fits."),
    "gpus": (_gpus, "List the catalog GPUs (memory, compute capability, bf16/FA2, TFLOPS, bandwidth)."),
    "models": (_models, "List every named model of the catalog (base and chat/instruct releases): Hub id, "
               "chat template, key numbers, sources."),
    "plot": (_plot, "Write one of the page's figures to a file."),
    "recommend": (_recommend, "The fastest configuration that fits (knob flags pin a choice), or why nothing fits."),
    "serve": (_serve, "The page and the JSON API (POST /api/estimate, /api/recommend, /api/emit)."),
    "sweep": (_sweep, "The best plan, or why nothing fits, for every model x GPU set x sequence length."),
    "trace": (_trace, "Trace one real training step of the model code on fake tensors (no GPU, no weights) and "
              "compare its tensor-memory peak with the formula's, term by term."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when one runs (click's lazy-loading pattern); its help
    lists them from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        load, _ = COMMANDS[cmd_name]
        return load()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing (click.Group.format_commands), each line from COMMANDS."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fitplan")
def cli() -> None:
    """Which fine-tuning configuration fits on these GPUs, and which of those trains fastest."""


def short_usage(ctx: click.Context) -> str:
    """What `fitplan` alone prints (on stderr, exit 2 as click's groups do): the usage line, the
    commands, where the help is; the full help is `fitplan --help`."""
    return (f"{ctx.get_usage()}\n\nCommands: {', '.join(COMMANDS)}\n"
            f"Try '{ctx.command_path} --help' for help, '{ctx.command_path} COMMAND --help' for a command's options.")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        result = cli.main(args=argv, prog_name="fitplan", standalone_mode=False)
    except FitplanError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(short_usage(exc.ctx), err=True)
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
