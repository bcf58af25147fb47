"""Runs the app under uvicorn: loopback by default, uvicorn's connection limit on top of the
solver pool's."""

from __future__ import annotations

import importlib.util

from .limits import ServerLimits

WEB_MODULES = ("starlette", "uvicorn", "multipart")  # python-multipart is imported as `multipart`
INSTALL_HINT = "pip install 'fitplan[web]'"


def missing_web_dependency() -> str | None:
    """The first module of the [web] extra that is not installed, or None."""
    for module in WEB_MODULES:
        if importlib.util.find_spec(module) is None:
            return module
    return None


def serve(host: str, port: int, limits: ServerLimits) -> None:
    """Serve until interrupted (uvicorn handles Ctrl-C)."""
    import uvicorn

    from .app import create_app

    print(f"fitplan serve: http://{host}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(create_app(limits), host=host, port=port, limit_concurrency=limits.max_connections,
                timeout_keep_alive=5, log_level="warning")
