"""The HTTP server: every seqlab task behind one FastAPI app, and the web playground at `/`.

    >>> from seqlab.serve.app import create_app
    >>> app = create_app({"sentiment": "runs/cnn", "ents": "en_core_web_sm"})
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)   (what `seqlab serve` does)

Endpoints: POST /v1/classify, /v1/generate (JSON, or Server-Sent Events with `"stream": true`),
/v1/ner, /v1/translate, /v1/fill-mask, /v1/augment; GET /v1/models, /v1/models/{name}/report
(a served run's HTML report, `seqlab.report`), /health, /openapi.json,
/docs (an offline page over /openapi.json), and `/` (the playground, static files).

The server is a thin skin: each handler checks the request against the server's limits, hands
it to a `seqlab.api` pipeline (through the model's micro-batcher or its inference thread) and
returns what the pipeline returned. Every error is JSON `{"error": "...", "code": "..."}` with a
4xx status: 400 for input the pipeline refuses (a `SeqlabError`) or malformed JSON, 404 for an
unknown model, 413 for a body over the size limit, 422 for a request that does not match the
schema or the server's limits; 504 when a request outlasts the per-request timeout; 503 with
`Retry-After` when the model's queue is full (`--max-queue`); 401 without the bearer token when
the server has an API key (`--api-key`: every route but /, /static, /docs, /openapi.json and
/health, which hold no data; the page sends the key it is given).

/v1/generate goes through the model's `Scheduler` (`seqlab.serve.scheduler`): requests join and
leave one running batch at token boundaries (in-flight batching for seqlab's GPT and Llama,
`--engine seqlab`; static batches for transformers models), each with its own settings; beam
search runs on the same thread between two steps, alone.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seqlab import __version__, api, report, runs
from seqlab.errors import SeqlabError
from seqlab.files import write_text
from seqlab.serve import schemas
from seqlab.serve.batching import QueueFull
from seqlab.serve.models import ServedModel, load_models
from seqlab.serve.scheduler import Ticket
from seqlab.serve.settings import ServeSettings

__all__ = ["create_app", "ServeSettings"]

log = logging.getLogger("seqlab")
STATIC = Path(__file__).parent / "static"
T = TypeVar("T")

# The page may load nothing from anywhere but this server (it must work offline anyway).
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"
# A run's report is one page: its pictures are data: URIs and its style is inline; it has no script.
REPORT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Error, "description": text}
    for status, text in (
        (400, "input the model refuses, or malformed JSON"),
        (404, "unknown model"),
        (413, "request body too large"),
        (422, "request does not match the schema or the server's limits"),
        (401, "missing or wrong bearer token (a server started with --api-key)"),
        (503, "the model's queue is full; retry after Retry-After seconds"),
        (504, "the request outlasted the per-request timeout"),
    )
}


class ApiError(Exception):
    """An error answered as `{"error": message, "code": code}` with `status`."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def create_app(models: dict[str, str], settings: ServeSettings | None = None) -> FastAPI:
    """An app serving `models` (name → run folder or built-in), each loaded now, once.

    Raises:
        SeqlabError: a model that cannot be loaded (before anything listens).
    """
    settings = settings or ServeSettings()
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    served = load_models(models, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for model in served.values():
            if model.batcher is not None:
                await model.batcher.close()
            model.executor.shutdown(wait=False)
        app.state.augmenter.shutdown(wait=False)

    app = FastAPI(
        title="seqlab",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        description='Every seqlab task over HTTP. Errors are JSON: {"error": "...", "code": "..."}.',
    )
    app.state.models = served
    app.state.augmenter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqlab-augment")  # spaCy/WordNet: one at a time
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.api_key is not None:  # added last, so it runs first: no body is read without the key
        app.add_middleware(BearerAuth, key=settings.api_key)
    _install_error_handlers(app)
    _add_task_routes(app)
    _add_info_routes(app)
    return app


# --------------------------------------------------------------------------- request checks


def _pick(request: Request, name: str | None, task: str) -> ServedModel:
    """The model a request names (or the first that does `task`), or a 4xx naming the choices."""
    served: dict[str, ServedModel] = request.app.state.models
    doing = [m.name for m in served.values() if m.task == task]
    if name is None:
        if not doing:
            raise ApiError(404, "no_model", f"this server has no {task} model; start it with --model NAME=RUN for a {task} run")
        return served[doing[0]]
    if name not in served:
        have = ", ".join(f"{m.name} ({m.task})" for m in served.values())
        raise ApiError(404, "unknown_model", f"unknown model {name!r}; this server has: {have}")
    model = served[name]
    if model.task != task:
        others = f"models that do {task}: {', '.join(doing)}" if doing else f"this server has no {task} model"
        raise ApiError(422, "wrong_task", f"model {name!r} does {model.task}, not {task}; {others}")
    return model


def _check_texts(request: Request, texts: list[str], field: str = "texts") -> None:
    settings: ServeSettings = request.app.state.settings
    if len(texts) > settings.max_texts:
        raise ApiError(
            422,
            "too_many_texts",
            f"{len(texts)} {field}, over this server's limit of {settings.max_texts} per request (--max-texts)",
        )
    for number, text in enumerate(texts):
        where = f"{field}[{number}]" if field == "texts" else field
        if len(text) > settings.max_text_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"{where} is {len(text):,} characters, over this server's limit of {settings.max_text_chars:,} (--max-chars)",
            )
        if field == "texts" and not text.strip():
            raise ApiError(422, "empty_text", f"{where} is blank; give some text")


async def _within_timeout(request: Request, work: Awaitable[T]) -> T:
    limit = request.app.state.settings.timeout_s
    try:
        return await asyncio.wait_for(work, limit)
    except asyncio.TimeoutError:
        raise ApiError(504, "timeout", f"the request took longer than this server's limit of {limit:g} s (--timeout)") from None


# --------------------------------------------------------------------------- task endpoints


def _add_task_routes(app: FastAPI) -> None:
    @app.post("/v1/classify", response_model=schemas.ClassifyResponse, responses=ERRORS, tags=["tasks"])
    async def classify(body: schemas.ClassifyRequest, request: Request) -> dict:
        """Labels and class probabilities; with `attention`, each layer's attention weights."""
        model = _pick(request, body.model, "classify")
        _check_texts(request, body.texts)
        pipe = model.pipeline
        texts = pipe.check_texts(body.texts)
        if body.attention and not model.describe()["attention"]:
            raise ApiError(
                422,
                "no_attention",
                f"model {model.name!r} ({pipe.config.model.arch}) has no attention weights; "
                "ask without attention, or serve a transformer run",
            )
        results = await _within_timeout(request, model.batcher.submit(texts))
        if body.attention:
            for result, text in zip(results, texts):
                result["attention"] = await _within_timeout(request, model.call(_attention, pipe, text))
        return {"model": model.name, "results": results}

    @app.post(
        "/v1/generate",
        response_model=schemas.GenerateResponse,
        tags=["tasks"],
        responses={
            **ERRORS,
            200: {
                "description": "the new text; with stream, text/event-stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
    )
    async def generate(body: schemas.GenerateRequest, request: Request) -> Any:
        """Continue a prompt (greedy, sampled or beam search); `stream: true` sends each new
        piece of text as a Server-Sent Event as soon as it is chosen."""
        model = _pick(request, body.model, "generate")
        _check_texts(request, [body.prompt], "prompt")
        cap = request.app.state.settings.max_new_tokens
        if body.max_new_tokens > cap:
            raise ApiError(
                422,
                "too_many_tokens",
                f"max_new_tokens={body.max_new_tokens} is over this server's cap of {cap} (--max-new-tokens)",
            )
        options = body.model_dump(exclude={"model", "prompt", "stream"}, exclude_none=True)
        pipe = model.pipeline
        config = pipe.settings(**options)  # settings are checked here, before any byte is sent
        if config.num_beams > 1:
            if body.stream:
                raise SeqlabError(
                    f"generation: stream needs num_beams=1 (got {config.num_beams}); "
                    "beam search answers once it is done: ask without stream"
                )
            text = await _within_timeout(request, model.call(lambda: pipe.generate([body.prompt], **options)[0]))
            return {"model": model.name, "text": text}
        if model.scheduler is None:  # (every generate model has one: `load_models`)
            raise ApiError(500, "internal_error", f"model {model.name!r} has no scheduler")
        ids, _ = pipe.encode_prompts([body.prompt], config.max_new_tokens)
        ticket = model.scheduler.submit(ids[0].tolist(), config, pipe.codec.decode)  # may be 503: queue full
        if body.stream:
            return StreamingResponse(
                _events(request, ticket),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            text = await _within_timeout(request, ticket.text())
        except RuntimeError as err:
            raise ApiError(500, "internal_error", str(err)) from None
        finally:
            ticket.cancel()  # (a no-op once done) a timeout or a client gone frees the row
        return {"model": model.name, "text": text}

    @app.post("/v1/ner", response_model=schemas.NerResponse, responses=ERRORS, tags=["tasks"])
    async def ner(body: schemas.NerRequest, request: Request) -> dict:
        """Named entities with character offsets and spaCy's description of each type."""
        model = _pick(request, body.model, "ner")
        _check_texts(request, body.texts)
        found = await _within_timeout(request, model.batcher.submit(body.texts))
        return {"model": model.name, "results": [{"text": t, "entities": e} for t, e in zip(body.texts, found)]}

    @app.post("/v1/translate", response_model=schemas.TranslateResponse, responses=ERRORS, tags=["tasks"])
    async def translate(body: schemas.TranslateRequest, request: Request) -> dict:
        """Translations; with `attention` (the default), the target × source alignment matrix."""
        model = _pick(request, body.model, "translate")
        _check_texts(request, body.texts)
        texts = model.pipeline.check_texts(body.texts)
        model.pipeline.settings(beam=body.beam)  # a bad beam width fails this request, not its batch
        results = await _within_timeout(request, model.batcher.submit(texts, key=(body.beam, body.attention)))
        return {"model": model.name, "results": results}

    @app.post("/v1/fill-mask", response_model=schemas.FillMaskResponse, responses=ERRORS, tags=["tasks"])
    async def fill_mask(body: schemas.FillMaskRequest, request: Request) -> dict:
        """The likeliest words for every [MASK] in the text (a pretrained masked LM)."""
        model = _pick(request, body.model, "fill-mask")
        _check_texts(request, [body.text], "text")
        masks = await _within_timeout(request, model.call(model.pipeline.fill_mask, body.text, body.top_k))
        return {"model": model.name, "masks": masks}

    @app.post("/v1/augment", response_model=schemas.AugmentResponse, responses=ERRORS, tags=["tasks"])
    async def augment(body: schemas.AugmentRequest, request: Request) -> dict:
        """`n` augmented versions of each text (`api.augment`), reproducible with `seed`. The
        model options (`model` for contextual, `forward`/`backward` for backtranslate) name
        models this server holds."""
        _check_texts(request, body.texts)
        methods = _augment_methods(request.app.state.models)
        if body.method not in methods:
            raise ApiError(
                422,
                "unknown_method",
                f"unknown augmentation method {body.method!r}; this server offers: {', '.join(methods) or 'none'}",
            )
        options = _augment_options(request, body.options.model_dump(exclude_none=True))
        work = request.app.state.augmenter.submit(
            api.augment, body.texts, method=body.method, n=body.n, seed=body.seed, **options
        )
        outputs = await _within_timeout(request, asyncio.wrap_future(work))
        return {"method": body.method, "results": [{"text": t, "augmentations": a} for t, a in zip(body.texts, outputs)]}


# augmentation options that name a model, and the task that model must do
AUGMENT_MODELS = {"model": "fill-mask", "forward": "translate", "backward": "translate"}


def _augment_methods(served: dict[str, ServedModel]) -> list[str]:
    """The methods this server can run: the word-level ones always; contextual with a fill-mask
    model; backtranslate with two translate models (there and back)."""
    tasks = [m.task for m in served.values()]
    usable = {"contextual": "fill-mask" in tasks, "backtranslate": tasks.count("translate") >= 2}
    return [m for m in api.augment_methods() if usable.get(m, True)]


def _augment_options(request: Request, options: dict[str, Any]) -> dict[str, Any]:
    """Model options name served models: a client never gives the server a path to open (for
    the same reason `synonyms`, a file, is not an option here)."""
    resolved = dict(options)
    for option, task in AUGMENT_MODELS.items():
        if option in options:
            model = _pick(request, str(options[option]), task)
            resolved[option] = model.spec
    return resolved


def _attention(pipe: Any, text: str) -> dict:
    """`pipe.attention` as JSON: tokens and per layer (H, T, T) weights, 4 decimals."""
    tokens, layers = pipe.attention(text)
    if not layers:  # (a transformers encoder on its fused SDPA kernel returns none)
        raise ApiError(
            422,
            "no_attention",
            f"{pipe.config.model.arch} model {pipe.path.name} returned no attention weights; ask without attention",
        )
    return {"tokens": tokens, "layers": [layer.float().round(decimals=4).tolist() for layer in layers]}


async def _events(request: Request, ticket: Ticket) -> AsyncIterator[str]:
    """Server-Sent Events for one stream: `data: {"text": piece}` per piece, then
    `event: done` with the whole text, or `event: error` with the reason.

    The request's row decodes in its model's running batch; its pieces arrive on the ticket. A
    client that goes away (Starlette then cancels this generator) or the timeout cancels the
    ticket, and the row leaves the batch before the next step.
    """
    loop = asyncio.get_running_loop()
    limit = request.app.state.settings.timeout_s
    deadline = loop.time() + limit
    text = ""
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(ticket.next(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                yield _event(
                    "error",
                    {"error": f"the stream took longer than this server's limit of {limit:g} s (--timeout)", "code": "timeout"},
                )
                return
            if kind == "piece":
                text += value
                yield _event(None, {"text": value})
            elif kind == "done":
                yield _event("done", {"text": text})
                return
            else:
                yield _event("error", {"error": value, "code": "internal_error"})
                return
    finally:
        ticket.cancel()  # (a no-op once done) the row leaves the batch before its next step


def _event(name: str | None, data: dict) -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


# --------------------------------------------------------------------------- models, health, page


def _add_info_routes(app: FastAPI) -> None:
    @app.get("/v1/models", response_model=schemas.ModelsResponse, tags=["info"])
    async def models(request: Request) -> dict:
        """The models this server holds, what each does, and the augmentation methods."""
        served: dict[str, ServedModel] = request.app.state.models
        return {
            "models": [
                {
                    "name": m.name,
                    "task": m.task,
                    "source": m.spec,
                    "details": m.describe(),
                    "report": f"/v1/models/{m.name}/report" if _run_folder(m) is not None else None,
                }
                for m in served.values()
            ],
            "augment": _augment_methods(served),
        }

    @app.get(
        "/v1/models/{name}/report",
        response_class=HTMLResponse,
        tags=["info"],
        responses={
            200: {"description": "the run's report.html: one self-contained page", "content": {"text/html": {}}},
            404: {"model": schemas.Error, "description": "unknown model, or a built-in model (no run folder, no report)"},
        },
    )
    async def model_report(name: str, request: Request) -> HTMLResponse:
        """The report of a served run (`seqlab report`): its scores, learning curves, plots,
        sample predictions and config, as one page. Written now if the run folder has none;
        built-in models have no run folder and so no report."""
        served: dict[str, ServedModel] = request.app.state.models
        if name not in served:
            raise ApiError(404, "unknown_model", f"unknown model {name!r}; this server has: {', '.join(served)}")
        model = served[name]
        run_dir = _run_folder(model)
        if run_dir is None:
            raise ApiError(404, "no_report", f"model {name!r} ({model.spec}) is not a run folder, so it has no report")
        page = run_dir / runs.REPORT
        if page.is_file():
            text = page.read_text(encoding="utf-8")
        else:
            text = await _within_timeout(request, model.call(_write_report, run_dir, model.pipeline))
        return HTMLResponse(text, headers={"Content-Security-Policy": REPORT_POLICY})

    @app.get("/health", response_model=schemas.Health, tags=["info"])
    async def health(request: Request) -> dict:
        return {"status": "ok", "models": len(request.app.state.models)}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html", headers={"Content-Security-Policy": PAGE_POLICY})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _run_folder(model: ServedModel) -> Path | None:
    """The run folder a model was loaded from (None: a built-in, a spaCy or transformers model)."""
    folder = Path(model.spec)
    return folder if (folder / runs.CONFIG).is_file() else None


def _write_report(run_dir: Path, pipe: Any) -> str:
    """A run's report, drawn with the loaded pipeline; kept in the folder when it is writable."""
    text = report.render(run_dir, pipe)
    try:
        write_text(run_dir / runs.REPORT, text)
    except SeqlabError as err:  # a read-only run folder: serve the page all the same
        log.info("report of %s not kept (%s)", run_dir, err)
    return text


# --------------------------------------------------------------------------- errors and limits


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _describe_validation(err: RequestValidationError) -> tuple[int, str, str]:
    """One line out of pydantic's error list: the first problem, with where it is."""
    problems = err.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "JSON decode error")
        return 400, "malformed_json", f"the body is not valid JSON ({reason}); send a JSON object"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return 422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}{more}"


class BodyTooLarge(Exception):
    """Raised from `BodyLimit`'s receive; ends the request, which then gets 413."""


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.code, err.message)

    @app.exception_handler(SeqlabError)
    async def seqlab_error(request: Request, err: SeqlabError) -> JSONResponse:
        return _error(400, "bad_input", str(err))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, err: QueueFull) -> JSONResponse:
        response = _error(503, "busy", str(err))
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return _error(*_describe_validation(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        message = f"no such endpoint {request.url.path}; see /docs" if err.status_code == 404 else str(err.detail)
        return _error(err.status_code, code, message)


RETRY_AFTER_S = 1  # what a 503 asks a client to wait: a decoding step frees rows every few tens of ms


class BearerAuth:
    """Every route but the open ones needs `Authorization: Bearer <key>`, compared in constant
    time (`hmac.compare_digest`), else 401 with `WWW-Authenticate: Bearer`. Open: the page, its
    static files, /docs, /openapi.json and /health, which hold no data; the page asks for the key
    (or reads it from the URL fragment, `/#key=...`) and sends it with each /v1 request. A new
    route is closed unless it is added here."""

    OPEN = frozenset({"/", "/docs", "/openapi.json", "/health"})

    def __init__(self, app: ASGIApp, key: str):
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in self.OPEN and not path.startswith("/static/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                answer = _error(401, "unauthorized", "this server needs an API key: send the header Authorization: Bearer <key>")
                answer.headers["WWW-Authenticate"] = "Bearer"
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413: at once when Content-Length says so,
    else (chunked upload) as soon as that many bytes have arrived, without reading the rest."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        message = f"the request body is over this server's limit of {self.limit:,} bytes (--max-body)"
        if declared is not None:
            if not declared.isdigit():
                await _error(400, "bad_header", "Content-Length is not a number")(scope, receive, send)
                return
            if int(declared) > self.limit:
                await _error(413, "too_large", message)(scope, receive, send)
                return
        received, too_big = 0, False

        async def limited() -> Message:
            nonlocal received, too_big
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.limit:
                    too_big = True
                    raise BodyTooLarge(message)
            return incoming

        async def unless_too_big(outgoing: Message) -> None:
            if not too_big:  # (FastAPI answers a failed body read with its own 400: dropped)
                await send(outgoing)

        try:
            await self.app(scope, limited, unless_too_big)
        except BodyTooLarge:
            pass
        if too_big:
            await _error(413, "too_large", message)(scope, receive, send)
