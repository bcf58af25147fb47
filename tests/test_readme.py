"""The README's 30-second example is the tool's real output, not pasted numbers."""

from pathlib import Path

from fitplan.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"
COMMAND = ["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G", "--seq-len", "2048"]


def test_readme_estimate_example_is_what_the_tool_prints_now(capsys):
    assert main(COMMAND) == 0
    printed = capsys.readouterr().out.rstrip()
    block = f"$ fitplan {' '.join(COMMAND)}\n{printed}\n```"
    assert block in README.read_text(), (
        "README.md's 30-second example is out of date: paste the output of "
        f"`fitplan {' '.join(COMMAND)}` into it")
