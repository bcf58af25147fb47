"""`fitplan serve`: the page and its JSON API on this machine (needs the [web] extra)."""

from __future__ import annotations

import click

from fitplan.solver.specs import limits

from .exit_codes import EXIT_BAD_INPUT
from .options import BoundedCommand, FiniteFloat, count


@click.command("serve", cls=BoundedCommand)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default answers this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--solver-threads", type=count(1, limits.MAX_JOBS), default=2, show_default=True,
              help="Questions answered at once; more wait in a bounded queue.")
@click.option("--request-timeout", type=FiniteFloat(1, 86400), default=60.0, show_default=True,
              help="Seconds a request may wait for its answer, queue included (then HTTP 503).")
@click.option("--max-time-limit", type=FiniteFloat(0.1, limits.MAX_TIME_LIMIT_S), default=10.0, show_default=True,
              help="Cap on a request's CP-SAT --time-limit, seconds.")
def serve_command(host: str, port: int, solver_threads: int, request_timeout: float, max_time_limit: float) -> None:
    """The page and the JSON API (POST /api/estimate, /api/recommend, /api/emit)."""
    from fitplan.web.server import INSTALL_HINT, missing_web_dependency

    missing = missing_web_dependency()
    if missing:
        click.echo(f"error: fitplan serve needs the web extra ({missing} is missing): {INSTALL_HINT}", err=True)
        raise SystemExit(EXIT_BAD_INPUT)
    from fitplan.web.limits import ServerLimits
    from fitplan.web.server import serve

    serve(host, port, ServerLimits(solver_threads=solver_threads, request_timeout_s=request_timeout,
                                   max_solver_time_s=max_time_limit))
