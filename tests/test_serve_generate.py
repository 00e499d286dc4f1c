"""/v1/generate on its model's scheduler (continuous batching): concurrent requests share decoding
steps and each gets what it gets alone; a client that goes away frees its slot; a full queue is a
503 with Retry-After; the API key (401 without it, 200 with it, the page still works)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from serve_runs import tiny_models
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app as cli
from seqlab.cli.serve import check_exposure, is_loopback
from seqlab.errors import SeqlabError
from seqlab.serve import ServeSettings
from seqlab.serve.app import create_app
from seqlab.serve.batching import MicroBatcher, QueueFull

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama) -> dict[str, str]:
    return {**tiny_models(tmp_path_factory.getbasetemp() / "serve-runs"), "llama": str(tiny_llama)}


def sse(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines.get("event", "message"), json.loads(lines["data"])))
    return events


async def _generate(http: httpx.AsyncClient, body: dict, headers: dict | None = None) -> str:
    response = await http.post("/v1/generate", json=body, headers=headers or {})
    assert response.status_code == 200, response.text
    if not body.get("stream"):
        return response.json()["text"]
    events = sse(response.text)
    assert events[-1][0] == "done", events
    assert "".join(data["text"] for name, data in events if name == "message") == events[-1][1]["text"]
    return events[-1][1]["text"]


def generate_all(app, bodies: list[dict], together: bool) -> list[str]:
    """Every body's text: all at once (concurrent clients on one event loop) or one by one."""

    async def main() -> list[str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60) as http:
            if together:
                return list(await asyncio.gather(*(_generate(http, body) for body in bodies)))
            return [await _generate(http, body) for body in bodies]

    return asyncio.run(main())


def slowed(served, seconds: float) -> None:
    """Every forward pass of a served model takes `seconds` longer (a long generation, on demand)."""
    model = served.pipeline.model
    forward = model.forward

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    model.forward = slow


# --------------------------------------------------------------------------- continuous batching


@pytest.mark.parametrize("name, batching", [("lm", "in-flight"), ("llama", "static")])
def test_concurrent_requests_share_steps_and_each_gets_its_text_alone(runs, name, batching):
    app = create_app({name: runs[name]}, ServeSettings(max_active=4))
    prompts = ["the cat", "a dog ran", "the", "mat 3 times", "park", "the dog ran to", "on the", "sat"]
    settings = [
        {"max_new_tokens": 12},
        {"max_new_tokens": 5, "stream": True},
        {"max_new_tokens": 9, "stop": ["the"]},
        {"max_new_tokens": 8, "do_sample": True, "seed": 7, "top_k": 5, "stream": True},
        {"max_new_tokens": 10, "repetition_penalty": 1.3},
        {"max_new_tokens": 6, "do_sample": True, "temperature": 0.8, "seed": 1},
        {"max_new_tokens": 12, "stream": True, "stop": ["a"]},
        {"max_new_tokens": 3},
    ]
    bodies = [{"model": name, "prompt": p, **s} for p, s in zip(prompts, settings)]
    together = generate_all(app, bodies, together=True)
    scheduler = app.state.models[name].scheduler
    shared = scheduler.describe()
    assert shared["batching"] == batching and shared["requests"] == len(bodies) and shared["mean_batch"] > 1, shared
    assert together == generate_all(app, bodies, together=False)  # the same request alone: the same text
    pipe = api.load_generator(runs[name])
    assert together[0] == pipe.generate("the cat", max_new_tokens=12)[0]  # and the pipeline's greedy text
    assert together[2] == pipe.generate("the", max_new_tokens=9, stop=["the"])[0]
    assert scheduler.active == 0 and scheduler.waiting == 0


@contextmanager
def real_server(app):
    """uvicorn on a free loopback port, in a thread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_client_that_goes_away_frees_its_slot_at_the_next_token(runs):
    app = create_app({"lm": runs["lm"]}, ServeSettings(max_active=1))
    served = app.state.models["lm"]
    slowed(served, 0.1)  # 20 tokens: 2 s alone
    scheduler = served.scheduler
    with real_server(app) as port:
        body = json.dumps({"model": "lm", "prompt": "the", "max_new_tokens": 20, "stream": True}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(
                b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
            received = b""
            while b"data: " not in received:
                received += client.recv(4096)
            assert scheduler.active == 1
        closed = time.monotonic()
        while scheduler.active and time.monotonic() - closed < 1.0:
            time.sleep(0.01)
        assert scheduler.active == 0 and scheduler.cancelled == 1  # long before its 20 tokens
        assert time.monotonic() - closed < 1.0
        second = httpx.post(
            f"http://127.0.0.1:{port}/v1/generate", json={"model": "lm", "prompt": "a", "max_new_tokens": 2}, timeout=30
        )
        assert second.status_code == 200 and scheduler.describe()["requests"] == 2


def test_a_full_queue_is_a_503_with_retry_after(runs):
    app = create_app({"lm": runs["lm"]}, ServeSettings(max_active=1, max_queue=1))
    served = app.state.models["lm"]
    slowed(served, 0.05)
    scheduler = served.scheduler

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60) as http:
            long = {"model": "lm", "prompt": "the", "max_new_tokens": 20}
            running = asyncio.ensure_future(http.post("/v1/generate", json=long))
            while scheduler.active < 1:
                await asyncio.sleep(0.01)
            waiting = asyncio.ensure_future(http.post("/v1/generate", json=long))
            while scheduler.waiting < 1:
                await asyncio.sleep(0.01)
            refused = await http.post("/v1/generate", json=long)
            for task in (running, waiting):  # the clients give up: both rows go
                task.cancel()
            await asyncio.gather(running, waiting, return_exceptions=True)
            return refused

    refused = asyncio.run(main())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["code"] == "busy" and "--max-queue" in refused.json()["error"]
    deadline = time.monotonic() + 5
    while (scheduler.active or scheduler.waiting) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.active == 0 and scheduler.waiting == 0


def test_a_micro_batcher_with_a_full_queue_refuses_more():
    from concurrent.futures import ThreadPoolExecutor

    async def main():
        batcher = MicroBatcher(
            lambda key, items: items, ThreadPoolExecutor(1), max_batch_size=8, max_wait_ms=50, max_pending=2, name="m"
        )
        first = [asyncio.ensure_future(batcher.submit([i])) for i in range(2)]
        await asyncio.sleep(0)  # both are pending, waiting for company
        with pytest.raises(QueueFull, match="'m' is busy"):
            await batcher.submit([3])
        results = await asyncio.gather(*first)
        await batcher.close()
        return results

    assert asyncio.run(main()) == [[0], [1]]


# --------------------------------------------------------------------------- API key


def test_the_api_key_guards_every_v1_route_and_nothing_else(runs):
    app = create_app({"lm": runs["lm"], "cnn": runs["cnn"]}, ServeSettings(api_key=KEY))
    with TestClient(app) as client:
        for path in ("/v1/models",):
            refused = client.get(path)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
            assert refused.headers["www-authenticate"] == "Bearer"
            assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert client.get(path, headers={"Authorization": KEY}).status_code == 401  # not a bearer header
            assert client.get(path, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        body = {"model": "lm", "prompt": "the", "max_new_tokens": 3}
        assert client.post("/v1/generate", json=body).status_code == 401
        assert client.post("/v1/classify", json={"texts": ["good"]}).status_code == 401
        ok = client.post("/v1/generate", json=body, headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and ok.json()["text"] == api.load_generator(runs["lm"]).generate("the", max_new_tokens=3)[0]
        for path in ("/", "/static/app.js", "/docs", "/openapi.json", "/health"):  # no data there
            assert client.get(path).status_code == 200, path
    with pytest.raises(SeqlabError, match="api_key"):
        ServeSettings(api_key=" ")
    assert KEY not in repr(ServeSettings(api_key=KEY))


@pytest.fixture
def cli_logging():
    logger = logging.getLogger("seqlab")
    saved = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


def test_serve_refuses_a_network_address_without_a_key_unless_told(runs, cli_logging):
    result = CliRunner().invoke(cli, ["serve", "--model", f"lm={runs['lm']}", "--host", "0.0.0.0"], env={"SEQLAB_API_KEY": ""})
    assert result.exit_code == 1 and "--api-key" in result.output and "--insecure-no-auth" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(SeqlabError, match="exposes the models"):
        check_exposure("192.168.1.5", None, insecure_no_auth=False)
    check_exposure("192.168.1.5", KEY, insecure_no_auth=False)
    check_exposure("0.0.0.0", None, insecure_no_auth=True)  # said so: a warning only
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.org", "::"))


def test_the_page_works_with_the_key_from_its_address(runs, tmp_path):
    """The playground opened as /#key=KEY lists the models and streams a generation (Chromium)."""
    from test_browser import CHROMIUM, CHROMIUM_ARGS, missing_browser_reason

    if (reason := missing_browser_reason()) is not None and os.environ.get("SEQLAB_REQUIRE_BROWSER") != "1":
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    app = create_app({"lm": runs["lm"]}, ServeSettings(api_key=KEY))
    with real_server(app) as port, sync_playwright() as playwright:
        url = f"http://127.0.0.1:{port}"
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(f"{url}/#key={KEY}")
        page.wait_for_selector("#status.ok")
        assert "#key" not in page.url  # taken out of the address bar
        page.click("#tasks button[data-task='generate']")
        page.fill("#max-new-tokens", "8")
        page.fill("#input", "the cat")
        page.click("#run")
        page.wait_for_selector(".generated[data-state='done']")
        expected = api.load_generator(runs["lm"]).generate("the cat", max_new_tokens=8)[0]
        assert page.inner_text(".generated .new") == expected
        context.close()
