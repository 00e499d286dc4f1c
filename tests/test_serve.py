"""The HTTP server (`seqlab.serve`): every endpoint against the Python API it wraps, micro-batching,
Server-Sent Events, limits and bad input, and a bounded schemathesis run over the OpenAPI schema."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from serve_runs import tiny_models
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app as cli
from seqlab.errors import SeqlabError
from seqlab.serve import ServeSettings
from seqlab.serve.app import create_app
from seqlab.serve.batching import MicroBatcher

# schemathesis examples per operation and mode (valid / invalid): about 10 s in all; more with
# SEQLAB_FUZZ_EXAMPLES=200 pytest tests/test_serve.py -k schemathesis
EXAMPLES = int(os.environ.get("SEQLAB_FUZZ_EXAMPLES", "10"))
APPLE = "Apple is looking at buying U.K. startup for $1 billion"


@pytest.fixture(scope="session")
def models(tmp_path_factory, tiny_llama) -> dict[str, str]:
    return {**tiny_models(tmp_path_factory.getbasetemp() / "serve-runs"), "llama": str(tiny_llama)}


@pytest.fixture(scope="module")
def client(models):
    with TestClient(create_app(models)) as test_client:
        yield test_client


def sse(body: str) -> list[tuple[str, dict]]:
    """`(event name, data)` for each Server-Sent Event in a response body."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines.get("event", "message"), json.loads(lines["data"])))
    return events


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["error"], body
    for word in words:
        assert word in body["error"], body["error"]


# --------------------------------------------------------------------------- endpoints = the API


def test_models_health_and_the_page(client, models):
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert {name: m["task"] for name, m in listed.items()} == {
        "sentiment": "classify",
        "cnn": "classify",
        "lm": "generate",
        "rev": "translate",
        "mlm": "fill-mask",
        "ents": "ner",
        "llama": "generate",
    }
    assert listed["sentiment"]["details"]["attention"] and not listed["cnn"]["details"]["attention"]
    assert "ORG" in listed["ents"]["details"]["labels"]
    assert client.get("/health").json() == {"status": "ok", "models": len(models)}
    page = client.get("/")
    assert (
        page.status_code == 200
        and "/static/app.js" in page.text
        and "default-src 'self'" in page.headers["content-security-policy"]
    )
    assert "http://" not in page.text and "https://" not in page.text  # nothing from the network
    for asset in ("app.js", "style.css", "docs.js"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "/v1/classify" in client.get("/openapi.json").json()["paths"] and client.get("/docs").status_code == 200


def test_every_served_run_has_its_report_and_built_ins_have_none(client, models):
    listed = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert listed["ents"]["report"] is None and listed["llama"]["report"] is None  # no run folder
    assert listed["sentiment"]["report"] == "/v1/models/sentiment/report"
    page = client.get("/v1/models/sentiment/report")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"] and "Attention" in page.text
    # a run folder without a report gets one written on demand, with the model the server holds
    (Path(models["rev"]) / "report.html").unlink(missing_ok=True)
    page = client.get("/v1/models/rev/report")
    assert page.status_code == 200 and "rev: translate" in page.text and (Path(models["rev"]) / "report.html").is_file()
    assert_error(client.get("/v1/models/ents/report"), 404, "no_report", "not a run folder")
    assert_error(client.get("/v1/models/nope/report"), 404, "unknown_model", "nope")


def test_classify_answers_what_the_api_answers(client, models):
    texts = ["great fun movie", "boring awful plot", "the film"]
    body = client.post("/v1/classify", json={"model": "sentiment", "texts": texts, "attention": True}).json()
    pipe = api.load(models["sentiment"])
    expected = pipe.predict(texts)
    assert [{"label": r["label"], "probabilities": r["probabilities"]} for r in body["results"]] == expected
    tokens, layers = pipe.attention(texts[0])
    shown = body["results"][0]["attention"]
    assert shown["tokens"] == tokens == ["[CLS]", "great", "fun", "movie"]
    assert len(shown["layers"]) == len(layers)
    heads = shown["layers"][-1]
    assert [len(heads), len(heads[0]), len(heads[0][0])] == list(layers[-1].shape)
    assert sum(heads[0][0]) == pytest.approx(1, abs=1e-3)
    cnn = client.post("/v1/classify", json={"model": "cnn", "texts": texts}).json()  # no attention asked: fine
    assert [r["label"] for r in cnn["results"]] == [p["label"] for p in api.load(models["cnn"]).predict(texts)]


@pytest.mark.parametrize("generator", ["lm", "llama"])
def test_stream_yields_the_text_of_greedy_generation(client, models, generator):
    request = {"model": generator, "prompt": "a dog ran", "max_new_tokens": 12}
    text = client.post("/v1/generate", json=request).json()["text"]
    assert text == api.load_generator(models[generator]).generate(["a dog ran"], max_new_tokens=12)[0]
    with client.stream("POST", "/v1/generate", json={**request, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response.read().decode())
    pieces = [data["text"] for name, data in events if name == "message"]
    assert len(pieces) > 1 and "".join(pieces) == text
    assert events[-1] == ("done", {"text": text})


def test_ner_translate_and_fill_mask_answer_what_the_api_answers(client, models):
    found = client.post("/v1/ner", json={"texts": [APPLE, "nothing here"]}).json()["results"]
    assert [(e["text"], e["label"]) for e in found[0]["entities"]] == [("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")]
    assert found[0]["entities"][0]["start"] == 0 and found[1]["entities"] == []
    sources = ["a b c", "d c b a"]
    translated = client.post("/v1/translate", json={"texts": sources, "beam": 1}).json()["results"]
    assert translated == api.load_translator(models["rev"]).translate(sources, beam=1, return_attention=True)
    first = translated[0]
    assert len(first["attention"]) == len(first["target_tokens"]) and len(first["attention"][0]) == len(first["source_tokens"])
    plain = client.post("/v1/translate", json={"texts": sources, "beam": 1, "attention": False}).json()["results"]
    assert [r["translation"] for r in plain] == [r["translation"] for r in translated] and plain[0]["attention"] is None
    masks = client.post("/v1/fill-mask", json={"text": "the cat sees the [MASK]", "top_k": 3}).json()["masks"]
    assert masks == api.fill_mask(models["mlm"], "the cat sees the [MASK]", top_k=3)


def test_augment_answers_what_the_api_answers_with_models_named_by_the_server(client, models):
    assert client.get("/v1/models").json()["augment"] == ["synonym", "eda", "contextual"]  # one translate model: no round trip
    texts = ["the cat sees the dog", "a fox sees the king"]
    request = {"texts": texts, "method": "contextual", "n": 2, "seed": 3, "options": {"model": "mlm", "tagger": "spacy"}}
    body = client.post("/v1/augment", json=request).json()
    assert [r["text"] for r in body["results"]] == texts
    assert [r["augmentations"] for r in body["results"]] == api.augment(
        texts, method="contextual", n=2, seed=3, model=models["mlm"], tagger="spacy"
    )


# --------------------------------------------------------------------------- micro-batching


def concurrently(app, path: str, bodies: list[dict]) -> list[dict]:
    """POST every body at once (one event loop, as concurrent clients would)."""

    async def run() -> list[dict]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            responses = await asyncio.gather(*(http.post(path, json=body) for body in bodies))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        return [r.json() for r in responses]

    return asyncio.run(run())


def test_micro_batched_and_unbatched_answers_are_equal(models):
    served = {name: models[name] for name in ("sentiment", "ents", "rev")}
    batched = create_app(served, ServeSettings(max_batch_size=32, batch_wait_ms=50))
    alone = create_app(served, ServeSettings(max_batch_size=1))
    words = ["great", "boring", "fun movie", "awful plot twist", "the film was quite good", "dull"]
    cases = [
        ("/v1/classify", "sentiment", [{"model": "sentiment", "texts": [w]} for w in words]),
        ("/v1/ner", "ents", [{"texts": [f"{name} flew to Paris on Monday"]} for name in ("Alice", "Bob", "Apple", "IBM")]),
        ("/v1/translate", "rev", [{"texts": [s], "beam": 1} for s in ("a b", "c a d", "b b c d a", "d")]),
    ]
    for path, name, bodies in cases:
        together = concurrently(batched, path, bodies)
        one_by_one = concurrently(alone, path, bodies)
        for a, b in zip(together, one_by_one):
            assert json.dumps(a["results"]) == json.dumps(b["results"]) or _close(a["results"], b["results"]), path
        assert batched.state.models[name].batcher.calls < len(bodies)  # they did share calls
        assert alone.state.models[name].batcher.calls == len(bodies)


def _close(a, b) -> bool:
    """Equal up to float rounding (a padded batch may sum in another order)."""
    if isinstance(a, float):
        return a == pytest.approx(b, abs=1e-5)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


def test_one_bad_input_fails_only_its_own_request():
    calls = []

    def run(key, items):
        calls.append(list(items))
        if "bad" in items:
            raise SeqlabError("bad item")
        return [item.upper() for item in items]

    async def main():
        from concurrent.futures import ThreadPoolExecutor

        batcher = MicroBatcher(run, ThreadPoolExecutor(1), max_batch_size=8, max_wait_ms=30)
        results = await asyncio.gather(
            batcher.submit(["a", "b"]),
            batcher.submit(["bad"]),
            batcher.submit(["c"]),
            batcher.submit(["d"], key="other"),
            return_exceptions=True,
        )
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results[0] == ["A", "B"] and results[2] == ["C"] and results[3] == ["D"]
    assert isinstance(results[1], SeqlabError)
    assert calls[0] == ["a", "b", "bad", "c"]  # first together, then each request alone
    assert ["d"] in calls and ["a", "b"] in calls and ["bad"] in calls


# --------------------------------------------------------------------------- bad input, limits


@pytest.mark.parametrize(
    "path, body, status, code, words",
    [
        ("/v1/classify", '{"texts": ["good"', 400, "malformed_json", ["not valid JSON"]),
        ("/v1/classify", '{"texts": "good"}', 422, "invalid_request", ["texts", "list"]),
        ("/v1/classify", '{"texts": [3]}', 422, "invalid_request", ["texts.0"]),
        ("/v1/classify", '{"texts": []}', 422, "invalid_request", ["texts"]),
        ("/v1/classify", '{"texts": [""]}', 422, "invalid_request", ["texts.0"]),
        ("/v1/classify", '{"texts": ["   "]}', 422, "empty_text", ["texts[0]"]),
        ("/v1/classify", '{"texts": ["good"], "colour": 1}', 422, "invalid_request", ["colour"]),
        ("/v1/classify", '["good"]', 422, "invalid_request", ["body"]),
        ("/v1/classify", '{"model": "nope", "texts": ["good"]}', 404, "unknown_model", ["nope", "sentiment (classify)"]),
        ("/v1/classify", '{"model": "ents", "texts": ["good"]}', 422, "wrong_task", ["does ner", "sentiment"]),
        ("/v1/classify", '{"model": "cnn", "texts": ["good"], "attention": true}', 422, "no_attention", ["cnn"]),
        ("/v1/ner", '{"model": "sentiment", "texts": ["good"]}', 422, "wrong_task", ["ents"]),
        ("/v1/generate", '{"prompt": "the", "max_new_tokens": 100000}', 422, "too_many_tokens", ["--max-new-tokens"]),
        ("/v1/generate", '{"prompt": "the", "temperature": 0.5}', 400, "bad_input", ["do_sample"]),
        ("/v1/generate", '{"prompt": "the", "stream": true, "num_beams": 2}', 400, "bad_input", ["num_beams"]),
        ("/v1/fill-mask", '{"text": "no mask here"}', 400, "bad_input", ["[MASK]"]),
        ("/v1/translate", '{"texts": ["a"], "beam": 0}', 422, "invalid_request", ["beam"]),
        ("/v1/augment", '{"texts": ["a b"], "method": "telepathy"}', 422, "unknown_method", ["telepathy", "eda"]),
        ("/v1/augment", '{"texts": ["a b"], "method": "backtranslate"}', 422, "unknown_method", ["backtranslate"]),
        (
            "/v1/augment",
            '{"texts": ["a b"], "method": "eda", "options": {"synonyms": "/etc/passwd"}}',
            422,
            "invalid_request",
            ["synonyms"],
        ),
        (
            "/v1/augment",
            '{"texts": ["a b"], "method": "eda", "options": {"rate": "high"}}',
            422,
            "invalid_request",
            ["options.rate"],
        ),
        (
            "/v1/augment",
            '{"texts": ["a b"], "method": "contextual", "options": {"model": "/tmp/run"}}',
            404,
            "unknown_model",
            ["/tmp/run"],
        ),
        ("/v1/augment", '{"texts": ["a b"], "method": "contextual", "options": {"model": "rev"}}', 422, "wrong_task", ["mlm"]),
        ("/v1/augment", '{"texts": ["a b"], "method": "eda", "options": {"model": "mlm"}}', 400, "bad_input", ["model"]),
    ],
)
def test_bad_input_is_a_4xx_that_names_the_problem(client, path, body, status, code, words):
    assert_error(client.post(path, content=body, headers={"content-type": "application/json"}), status, code, *words)


def test_limits_on_body_size_text_length_and_count(models):
    small = create_app({"cnn": models["cnn"]}, ServeSettings(max_body_bytes=10_000, max_text_chars=100, max_texts=3))
    with TestClient(small) as client:
        big = json.dumps({"texts": ["x" * 10_000_000]})  # 10 MB
        assert_error(
            client.post("/v1/classify", content=big, headers={"content-type": "application/json"}), 413, "too_large", "10,000"
        )

        def chunked():  # no Content-Length: cut off once the limit has arrived
            yield b'{"texts": ["'
            for _ in range(100):
                yield b"x" * 1000

        assert_error(
            client.post("/v1/classify", content=chunked(), headers={"content-type": "application/json"}), 413, "too_large"
        )
        assert_error(client.post("/v1/classify", json={"texts": ["x" * 101]}), 422, "text_too_long", "--max-chars")
        assert_error(client.post("/v1/classify", json={"texts": ["a"] * 4}), 422, "too_many_texts", "3")
        assert_error(client.post("/v1/ner", json={"texts": ["a"]}), 404, "no_model", "ner")
        assert_error(client.get("/v1/nothing"), 404, "not_found")
        assert_error(client.get("/v1/classify"), 405, "method_not_allowed")


def test_a_request_over_the_timeout_gets_504_and_a_stream_an_error_event(models):
    hurried = create_app({"lm": models["lm"]}, ServeSettings(timeout_s=0.001))
    with TestClient(hurried) as client:
        assert_error(
            client.post("/v1/generate", json={"prompt": "a dog ran", "max_new_tokens": 200}), 504, "timeout", "--timeout"
        )
        with client.stream(
            "POST", "/v1/generate", json={"prompt": "a dog ran", "max_new_tokens": 200, "stream": True}
        ) as response:
            events = sse(response.read().decode())
        assert events[-1][0] == "error" and events[-1][1]["code"] == "timeout"


def test_models_that_do_not_load_fail_before_serving(tmp_path):
    with pytest.raises(SeqlabError, match="give at least one model"):
        create_app({})
    with pytest.raises(SeqlabError, match="neither a seqlab run"):
        create_app({"x": str(tmp_path)})
    with pytest.raises(SeqlabError, match="model name"):
        create_app({"a b": "en_core_web_sm"})
    with pytest.raises(SeqlabError, match="must be positive"):
        ServeSettings(timeout_s=0)


@pytest.fixture
def cli_logging():
    """The CLI points seqlab's log at the runner's stderr, closed afterwards: put it back."""
    logger = logging.getLogger("seqlab")
    saved = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


def test_cli_refuses_bad_models_and_busy_ports_in_one_line(tmp_path, cli_logging):
    runner = CliRunner()
    result = runner.invoke(cli, ["serve", "--model", "x=" + str(tmp_path), "--port", "0"])
    assert result.exit_code == 1 and "error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["serve", "--model", "a=en_core_web_sm", "--model", "a=en_core_web_sm"])
    assert result.exit_code == 1 and "given twice" in result.output
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["serve", "--model", "ents=en_core_web_sm", "--port", str(port)])
    assert result.exit_code == 1 and "in use" in result.output


# --------------------------------------------------------------------------- schemathesis


def test_schemathesis_finds_no_server_error(models):
    """Requests generated from the OpenAPI schema, valid and invalid, for every operation: never
    a 5xx, and every 4xx is a JSON error. (The app runs under tight limits, so each is fast.)"""
    app = create_app(models, ServeSettings(max_text_chars=200, max_texts=4, max_new_tokens=4, timeout_s=10))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()
        invalid = [GenerationMode.NEGATIVE] if len(operation.body) else []  # (a GET without parameters has no invalid form)
        for mode in [GenerationMode.POSITIVE, *invalid]:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case):
                response = case.call()
                assert response.status_code < 500, (
                    f"{case.method} {case.path} {case.body!r} → {response.status_code} {response.text}"
                )
                if response.status_code >= 400:
                    assert response.json()["error"]

            no_server_error()
            checked.append(f"{operation.method.upper()} {operation.path}")
    assert {"POST /v1/classify", "POST /v1/generate", "POST /v1/augment", "GET /v1/models"} <= set(checked)
