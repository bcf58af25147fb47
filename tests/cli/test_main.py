"""The `fitplan` group: commands loaded when they run, the listing from cli/main.py COMMANDS."""

from __future__ import annotations

import subprocess
import sys

from fitplan.cli.main import COMMANDS, cli, main


def test_every_listed_sentence_is_the_first_paragraph_of_its_commands_help():
    for name, (_, sentence) in COMMANDS.items():
        command = cli.get_command(None, name)
        assert command.name == name
        assert " ".join(command.help.partition("\n\n")[0].split()) == sentence, name


def test_help_lists_the_commands_without_importing_them_or_ortools():
    code = ("import sys; from fitplan.cli.main import main; code = main(['--help']); "
            "loaded = [m for m in sys.modules if m.startswith(('fitplan.cli.recommend', 'fitplan.cli.check', "
            "'ortools', 'pandas', 'numpy', 'huggingface_hub', 'fitplan.solver.planner'))]; "
            "print(code, loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 []"
    assert "recommend  The fastest configuration that fits" in out


def test_estimate_never_imports_ortools():
    code = ("import sys; from fitplan.cli.main import main; "
            "code = main(['estimate', '--model', 'qwen2.5-0.5b', '--gpus', '1xT4', '--json']); "
            "print(code, [m for m in sys.modules if m.startswith(('ortools', 'pandas', 'huggingface_hub'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 []"


def test_fitplan_alone_prints_the_short_usage_and_exits_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0] == "Usage: fitplan [OPTIONS] COMMAND [ARGS]..."
    assert len(lines) <= 5
    assert "recommend" in captured.err and "fitplan --help" in captured.err
