"""`seqlab serve`: a thin skin over `seqlab.serve.create_app` and uvicorn.

Registered by the main CLI: `app.command()(serve)`.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

_out = Console(soft_wrap=True, highlight=False, stderr=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@handle_errors
def serve(
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            "-m",
            help="NAME=RUN or NAME=BUILTIN, repeatable: a run folder (classify, lm, tag, translate, pretrain-mlm) or a built-in such as en_core_web_sm or smollm2-135m. A bare RUN is named after its folder.",
            show_default=False,
        ),
    ],
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; anything but loopback exposes the models to the network, and then needs --api-key (or --insecure-no-auth)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes (larger: 413).")] = 1_000_000,
    max_chars: Annotated[int, typer.Option(help="Longest text or prompt in characters (longer: 422).")] = 10_000,
    max_texts: Annotated[int, typer.Option(help="Most texts in one request.")] = 64,
    max_new_tokens: Annotated[int, typer.Option(help="Cap on max_new_tokens of /v1/generate.")] = 256,
    timeout: Annotated[
        float, typer.Option(help="Per-request limit in seconds (over it: 504; a stream gets an error event).")
    ] = 30.0,
    max_batch_size: Annotated[int, typer.Option(help="Texts per micro-batch for classify/ner/translate (1: no batching).")] = 32,
    batch_wait_ms: Annotated[
        float, typer.Option(help="How long the first request of a batch waits for others, in milliseconds.")
    ] = 5.0,
    threads: Annotated[
        Optional[int],
        typer.Option(
            help="PyTorch intra-op threads for the process (default: PyTorch's, one per core; OMP_NUM_THREADS also sets it)."
        ),
    ] = None,
    max_active: Annotated[
        int,
        typer.Option(
            help="Per generate model: most sequences decoding at once in its running batch (requests join and leave it token by token)."
        ),
    ] = 16,
    max_queue: Annotated[int, typer.Option(help="Per model: most requests waiting; one more gets 503 with Retry-After.")] = 64,
    engine: Annotated[
        Optional[str],
        typer.Option(
            help="Generate models: hf (transformers) or seqlab (seqlab's own GPT / Llama for GPT-2 and Llama weights, e.g. smollm2-135m: in-flight batching). Default: seqlab generate's.",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        Optional[str],
        typer.Option(
            help="Generate models: weights for decoding, as seqlab generate --dtype. Default: seqlab generate's.",
            show_default=False,
        ),
    ] = None,
    api_key: Annotated[
        Optional[str],
        typer.Option(
            envvar="SEQLAB_API_KEY",
            help="Require Authorization: Bearer KEY on every /v1 route (the page asks for the key, or open it as /#key=KEY). Prefer the SEQLAB_API_KEY variable: a command line is visible to other users.",
            show_default=False,
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve a non-loopback --host without an API key: anyone who can reach it can use the models.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug.")] = "info",
) -> None:
    """Serve models over HTTP with a web playground at `/`:
    `seqlab serve --model sentiment=runs/cnn --model ents=en_core_web_sm`.

    One process; each model is loaded once, at start-up, and has one inference thread.

    classify, ner and translate requests arriving within --batch-wait-ms run as one batch (--threads: PyTorch's threads).
    generate requests join and leave one running batch token by token (--max-active): in-flight
    batching for seqlab's own GPT and Llama (lm runs, --engine seqlab), batches that start together
    for transformers models.

    A non-loopback --host needs an API key (--api-key or SEQLAB_API_KEY) or --insecure-no-auth.

    For more throughput on a big machine, run several servers on different ports behind a load balancer.
    """
    import uvicorn

    from seqlab.serve import ServeSettings
    from seqlab.serve.app import create_app

    models = parse_models(model)
    settings = ServeSettings(
        max_body_bytes=max_body,
        max_text_chars=max_chars,
        max_texts=max_texts,
        max_new_tokens=max_new_tokens,
        timeout_s=timeout,
        max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms,
        threads=threads,
        max_active=max_active,
        max_queue=max_queue,
        api_key=api_key,
        engine=engine,
        dtype=dtype,
    )
    check_exposure(host, api_key, insecure_no_auth)
    check_port_free(host, port)
    app = create_app(models, settings)
    shown = "localhost" if host in LOOPBACK else host
    key = " (API key required: open the playground as /#key=KEY)" if api_key else ""
    _out.print(
        f"seqlab serve: {len(models)} model(s); playground http://{shown}:{port}/ , API docs http://{shown}:{port}/docs{key}"
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None, insecure_no_auth: bool) -> None:
    """Refuse to put the models on the network without a key, unless the operator says so."""
    if is_loopback(host) or api_key:
        return
    if not insecure_no_auth:
        raise SeqlabError(
            f"--host {host} exposes the models to the network: give an API key (--api-key, or the "
            "SEQLAB_API_KEY variable), or pass --insecure-no-auth to serve without one"
        )
    _out.print(
        f"[yellow]warning:[/yellow] serving on {host} without an API key: anyone who can reach this machine can use these models"
    )


def parse_models(specs: list[str]) -> dict[str, str]:
    """`NAME=SPEC` options → {name: spec}; a bare SPEC is named after its last path part."""
    models: dict[str, str] = {}
    for spec in specs:
        name, sep, source = spec.partition("=")
        if not sep:
            name, source = Path(spec.rstrip("/")).name, spec
        if not name or not source:
            raise SeqlabError(
                f"--model {spec!r}: write NAME=RUN (e.g. sentiment=runs/cnn) or NAME=BUILTIN (e.g. ents=en_core_web_sm)"
            )
        if name in models:
            raise SeqlabError(f"--model: the name {name!r} is given twice; give each model its own name")
        models[name] = source
    return models


def check_port_free(host: str, port: int) -> None:
    """One clear line, before the models load, when the address cannot be bound."""
    if not 0 < port < 65536:
        raise SeqlabError(f"--port {port} is not a TCP port (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise SeqlabError(f"--host {host!r} is not an address of this machine") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as err:
            reason = "is in use" if err.errno == errno.EADDRINUSE else f"cannot be bound ({err.strerror})"
            raise SeqlabError(f"{host}:{port} {reason}; pick another with --port") from None
