"""`fitplan serve` and `fitplan plot` as commands: serve without the extra says how to install it,
plot writes the page's figures, and estimate / recommend never load the web stack."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from fitplan.cli.main import main


def test_serve_without_the_web_extra_says_how_to_install_it(capsys, monkeypatch):
    from fitplan.web import server

    monkeypatch.setattr(server, "WEB_MODULES", (*server.WEB_MODULES, "fitplan_no_such_module"))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("error: fitplan serve needs the web extra (fitplan_no_such_module is missing): "
                   "pip install 'fitplan[web]'")]


def test_estimate_and_recommend_load_no_web_module():
    code = ("import sys; from fitplan.cli.main import main; "
            "main(['estimate', '--model', 'qwen2.5-0.5b', '--gpus', '1xA10', '--json']); "
            "main(['recommend', '--model', 'qwen2.5-0.5b', '--gpus', '1xA10', '--json']); "
            "web = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'multipart') "
            "or m.startswith('fitplan.web')]; print('WEB', web, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "WEB []" in result.stderr, result.stderr


@pytest.mark.parametrize("kind,css", [("seq-len", "seq-len-plot"), ("runners-up", "runners-up-plot"),
                                      ("memory-bar", "memory-bar")])
def test_plot_writes_the_page_figure_as_svg(tmp_path, capsys, kind, css):
    out = tmp_path / "plot.svg"
    assert main(["plot", "--model", "qwen2.5-7b", "--gpus", "8xP4", "--seq-len", "1024", "--kind", kind,
                 "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert ET.fromstring(out.read_text()).get("class") == css


def test_plot_writes_png_with_the_png_extra(tmp_path):
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError) as exc:  # OSError: no libcairo2 on the system
        pytest.skip(f"PNG needs the [png] extra and libcairo2: {exc}")
    out = tmp_path / "plot.png"
    assert main(["plot", "--model", "qwen2.5-0.5b", "--gpus", "1xA10", "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_question_where_nothing_fits_exits_3(tmp_path, capsys):
    code = main(["plot", "--model", "qwen2.5-72b", "--gpus", "1xP4", "--method", "full", "--kind", "memory-bar",
                 "-o", str(tmp_path / "bar.svg")])
    assert code == 3
    assert capsys.readouterr().err.startswith("nothing fits: ")


def test_plot_refuses_other_file_types(tmp_path, capsys):
    assert main(["plot", "--model", "qwen2.5-7b", "--gpus", "8xP4", "-o", str(tmp_path / "plot.pdf")]) == 2
    assert "write a .svg or a .png file" in capsys.readouterr().err
