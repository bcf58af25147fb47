"""The Starlette application behind `fitplan serve`: the page, the JSON API and the downloads.

    POST /api/estimate    `fitplan estimate --json` of a JSON body of option names
    POST /api/recommend   `fitplan recommend --json` (with "max_seq_len"/"min_gpus": true, their answers)
    POST /api/emit        the zip of the files `recommend --emit llamafactory|deepspeed` writes
    GET  /                the page; POST / answers its form; POST /download gives its zip
    GET  /healthz         {"status": "ok"}

Bad input: HTTP 422 {"error": "<the one line fitplan prints>"}; nothing fits for a download:
409; the server busy or an answer past the request timeout: 503; a body over the limit: 413.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .answers import Limits, NothingFits, emit_zip, estimate_json, page_answer, recommend_json
from .api_bridge import ConfigFileError, FitplanError
from .form import error_field, question_body
from .limits import BodySizeLimit, ServerBusy, ServerLimits, SolverPool
from .page import question_json, render_page
from .questions import EstimateQuestion, QuestionError, RecommendQuestion, parse_question

FORM_LIMITS = {"max_files": 1, "max_fields": 200}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> object:
    try:
        return json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuestionError(f"the body is not JSON ({exc}): send an object of option names") from None


def _zip_response(name_and_bytes: tuple[str, bytes]) -> Response:
    name, payload = name_and_bytes
    return Response(payload, media_type="application/zip",
                    headers={"content-disposition": f'attachment; filename="{name}"'})


class Endpoints:
    """The routes, sharing one solver pool and the server's limits."""

    def __init__(self, limits: ServerLimits) -> None:
        self.limits = limits
        self.pool = SolverPool(limits)
        self.answer_limits = Limits(max_time_limit_s=limits.max_solver_time_s, max_top_k=limits.max_top_k)

    async def api_estimate(self, request: Request) -> Response:
        return await self._api(request, EstimateQuestion, lambda q: (estimate_json, q), JSONResponse)

    async def api_recommend(self, request: Request) -> Response:
        return await self._api(request, RecommendQuestion, lambda q: (recommend_json, q, self.answer_limits),
                               JSONResponse)

    async def api_emit(self, request: Request) -> Response:
        return await self._api(request, RecommendQuestion, lambda q: (emit_zip, q, self.answer_limits), _zip_response)

    async def _api(self, request: Request, kind, work, respond) -> Response:
        try:
            question = parse_question(kind, await _json_body(request))
            return respond(await self.pool.run(*work(question)))
        except NothingFits as exc:
            return _error(409, str(exc))
        except FitplanError as exc:
            return _error(422, str(exc))
        except ServerBusy as exc:
            return _error(503, str(exc))

    async def page(self, request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(render_page({}))
        form = await request.form(**FORM_LIMITS, max_part_size=self.limits.max_body_bytes)
        values = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        action = "estimate" if values.get("action") == "estimate" else "recommend"
        config_text = None
        try:
            config_text = await _config_text(form, values)
            body = question_body(values, config_text)
            question = parse_question(RecommendQuestion, body)
            answer = await self.pool.run(page_answer, question, action, self.answer_limits)
        except FitplanError as exc:
            page = render_page(values, errors={error_field(exc): str(exc)}, config_text=config_text)
            return HTMLResponse(page, status_code=422)
        except ServerBusy as exc:
            return HTMLResponse(render_page(values, errors={None: str(exc)}, config_text=config_text), status_code=503)
        return HTMLResponse(render_page(values, answer=answer, question_json=question_json(body),
                                        config_text=config_text))

    async def download(self, request: Request) -> Response:
        form = await request.form(**FORM_LIMITS, max_part_size=self.limits.max_body_bytes)
        try:
            body = json.loads(str(form.get("question") or "null"))
            question = parse_question(RecommendQuestion, body)
            return _zip_response(await self.pool.run(emit_zip, question, self.answer_limits))
        except json.JSONDecodeError:
            return _error(422, "the download form holds no question: ask it on the page first")
        except NothingFits as exc:
            return _error(409, str(exc))
        except FitplanError as exc:
            return _error(422, str(exc))
        except ServerBusy as exc:
            return _error(503, str(exc))


async def _config_text(form, values: dict[str, str]) -> str | None:
    """The config.json to use: a new upload, else the one uploaded before (unless a model name
    was typed), else None (the model field names the model)."""
    upload = form.get("config_json")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        data = await upload.read()
        if data:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigFileError("the uploaded config.json is not UTF-8 text: upload the model's "
                                      "config.json") from None
    if values.get("model", "").strip():
        return None
    return values.get("config_json_text") or None


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def create_app(limits: ServerLimits | None = None):
    """The ASGI application: the routes inside the body size limit."""
    limits = limits or ServerLimits()
    endpoints = Endpoints(limits)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        endpoints.pool.shutdown()

    app = Starlette(routes=[
        Route("/", endpoints.page, methods=["GET", "POST"]),
        Route("/download", endpoints.download, methods=["POST"]),
        Route("/api/estimate", endpoints.api_estimate, methods=["POST"]),
        Route("/api/recommend", endpoints.api_recommend, methods=["POST"]),
        Route("/api/emit", endpoints.api_emit, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ], lifespan=lifespan)
    return BodySizeLimit(app, limits.max_body_bytes)
