"""One request cannot hold the server: the pool refuses work past its queue and gives up waiting
at the request timeout; the solver's time limit and the number of plans are capped."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fitplan.web.limits import ServerBusy, ServerLimits, SolverPool
from fitplan.web.questions import RecommendQuestion, parse_question


def test_the_pool_refuses_work_beyond_its_threads_and_queue():
    release = threading.Event()
    pool = SolverPool(ServerLimits(solver_threads=1, max_waiting=1, request_timeout_s=5))

    async def scenario():
        first = asyncio.ensure_future(pool.run(release.wait))
        second = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(ServerBusy, match="answering 2 questions already"):
            await pool.run(release.wait)
        release.set()
        return await first, await second

    assert asyncio.run(scenario()) == (True, True)
    pool.shutdown()


def test_an_answer_past_the_request_timeout_is_503_and_frees_its_slot():
    release = threading.Event()
    pool = SolverPool(ServerLimits(solver_threads=1, max_waiting=0, request_timeout_s=0.1))

    async def scenario():
        with pytest.raises(ServerBusy, match="no answer within 0.1 s"):
            await pool.run(release.wait)
        release.set()
        await asyncio.sleep(0.05)
        return await pool.run(lambda: 42)

    assert asyncio.run(scenario()) == 42
    pool.shutdown()


def test_the_server_caps_the_time_limit_and_the_runners_up():
    question = parse_question(RecommendQuestion, {"model": "qwen2.5-7b", "gpus": "8xP4", "time_limit": 600, "top": 500})
    settings = question.settings(max_time_limit_s=10, max_top_k=20)
    assert settings.time_limit_s == 10 and settings.top_k == 20
    assert question.settings(max_time_limit_s=10, max_top_k=20).headroom_fraction == 0.05


def test_serve_binds_to_loopback_unless_told_otherwise():
    from fitplan.cli.serve import serve_command

    host = next(p for p in serve_command.params if p.name == "host")
    assert host.default == "127.0.0.1"
