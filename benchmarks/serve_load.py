"""Load on `seqlab serve`: concurrent clients against /v1/classify, with micro-batching and
with batch-size-1 serving, on loopback; or (`--task generate`) concurrent streaming clients
against /v1/generate, with continuous batching, against one client at a time.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py --run cnn=runs/cnn --run minilm=runs/minilm \
        --clients 32 --duration 60
    python benchmarks/serve_load.py --task generate --run smollm2=smollm2-135m --engine seqlab \
        --clients 16 --duration 60 --threads 2

Generate: each client streams one request after another (a prompt from rt-polarity,
`--new-tokens` new tokens, greedy or sampled with its own seed, half and half) over a keep-alive
connection and reads the Server-Sent Events as they come. Reported: aggregate tokens/s (the
server's own count of tokens chosen, from /v1/models, over the run), time to first token and
inter-token latency p50/p99 (from the client's clock: request sent → first piece, and between
pieces), errors (non-200, an error event, a broken connection), the server's memory every tenth
of the run, and the mean batch the scheduler stepped. The clients start `--stagger` seconds
apart in all (as users arrive; sixteen requests sent in one wave would all wait for one
16-prompt prefill). Modes: `batched` (`--clients` clients,
`--max-active` rows) and `single` (one client: what each of them got when the server decoded one
request at a time); the ratio of their tokens/s is the gain of continuous batching.

For every run and mode this starts a real server process (`seqlab serve --max-batch-size 32` or
`1`, `--threads 1`), warms it up, then keeps `--clients` keep-alive connections busy for
`--duration` seconds, each sending one rt-polarity sentence per request and waiting for the
answer before sending the next. It reports requests/s, p50/p99 latency, errors (any non-200 or
broken connection), the server's resident memory before and after the load, and the mean batch
the server actually ran (from /v1/models). The client is a few lines of asyncio over raw
HTTP/1.1, so it costs far less CPU than the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def start_server(
    name: str, run: str, port: int, batch: int, wait_ms: float, extra: tuple[str, ...] = ("--threads", "1")
) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "seqlab.cli.main",
        "serve",
        "--model",
        f"{name}={run}",
        "--port",
        str(port),
        "--max-batch-size",
        str(batch),
        "--batch-wait-ms",
        str(wait_ms),
        "--log-level",
        "warning",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 180 s")


async def client(
    port: int, texts: list[str], model: str, until: float, latencies: list[float], errors: list[str], seed: int
) -> None:
    """One keep-alive connection sending requests back to back until `until`."""
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            body = json.dumps({"model": model, "texts": [rng.choice(texts)]}).encode()
            head = (
                f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                errors.append(status_line.decode(errors="replace").strip())
    except (OSError, asyncio.IncompleteReadError) as err:
        errors.append(f"connection: {err!r}")
    finally:
        writer.close()


async def load(port: int, texts: list[str], model: str, clients: int, duration: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(client(port, texts, model, started + duration, latencies, errors, seed) for seed in range(clients)))
    return latencies, errors, time.perf_counter() - started


def mean_batch(port: int, model: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models") as answer:
        (info,) = [m for m in json.load(answer)["models"] if m["name"] == model]
    batches = info["details"]["batches"]
    return batches["items"] / max(batches["calls"], 1)


def measure(
    name: str, run: str, mode: str, texts: list[str], clients: int, duration: float, port: int, batch: int, wait_ms: float
) -> dict:
    server = start_server(name, run, port, batch if mode == "batched" else 1, wait_ms)
    try:
        process = psutil.Process(server.pid)
        asyncio.run(load(port, texts, name, clients, 3))  # warm-up: first calls, allocator pools
        rss_before = process.memory_info().rss
        samples: list[int] = []  # RSS every tenth of the run: does it level off?
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(duration / 10):
                samples.append(process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies, errors, seconds = asyncio.run(load(port, texts, name, clients, duration))
        stop.set()
        sampler.join()
        rss_after = process.memory_info().rss
        batch = mean_batch(port, name)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ordered = sorted(latencies)
    return {
        "model": name,
        "run": run,
        "mode": mode,
        "clients": clients,
        "seconds": round(seconds, 1),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        "mean_batch": round(batch, 1),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_during_mb": [round(rss / 2**20) for rss in samples],
    }


def pipeline_ceiling(run: str, texts: list[str], batch: int, seconds: float) -> dict:
    """texts/s of `api.load(run).predict` itself, `batch` texts per call vs one per call (one
    thread, no HTTP): the most any batching server can gain on this model."""
    import torch

    from seqlab import api

    torch.set_num_threads(1)
    pipe, rng = api.load(run), random.Random(0)
    pipe.predict(texts[:batch])
    rates = {}
    for size in (batch, 1):
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            chosen = rng.sample(texts, batch)
            for i in range(0, batch, size):
                pipe.predict(chosen[i : i + size])
            done += batch
        rates[size] = done / (time.perf_counter() - started)
    return {
        "batched_texts_per_s": round(rates[batch], 1),
        "single_texts_per_s": round(rates[1], 1),
        "ratio": round(rates[batch] / rates[1], 2),
    }


# --------------------------------------------------------------------------- generate: streaming clients


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked HTTP/1.1 body (b"" at the last one)."""
    size = int((await reader.readline()).split(b";")[0], 16)
    data = await reader.readexactly(size) if size else b""
    await reader.readline()  # the CRLF after the chunk
    return data


async def stream_client(
    port: int,
    prompts: list[str],
    model: str,
    new_tokens: int,
    until: float,
    seed: int,
    stats: dict[str, list],
    delay: float = 0.0,
) -> None:
    """One keep-alive connection streaming generations back to back until `until`, the first
    after `delay` seconds."""
    rng = random.Random(seed)
    await asyncio.sleep(delay)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            body = {"model": model, "prompt": rng.choice(prompts), "max_new_tokens": new_tokens, "stream": True}
            if rng.random() < 0.5:  # half sampled, each with its own settings
                body.update(do_sample=True, temperature=0.8, top_p=0.95, seed=rng.randrange(2**31))
            data = json.dumps(body).encode()
            writer.write(
                (
                    f"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                + data
            )
            started = time.perf_counter()
            await writer.drain()
            status_line = await reader.readline()
            chunked, length = False, 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                lower = line.lower()
                chunked |= lower.startswith(b"transfer-encoding:") and b"chunked" in lower
                if lower.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if b" 200 " not in status_line or not chunked:
                await reader.readexactly(length)
                stats["errors"].append(status_line.decode(errors="replace").strip())
                continue
            buffer, last = b"", None
            while chunk := await _read_chunk(reader):  # until the last (empty) chunk
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    now = time.perf_counter()
                    if event.startswith(b"data: "):
                        (stats["ttft"] if last is None else stats["itl"]).append(now - (started if last is None else last))
                        last = now
                    elif event.startswith(b"event: done"):
                        stats["requests"].append(now - started)
                    else:
                        stats["errors"].append(event.decode(errors="replace")[:200])
    except (OSError, asyncio.IncompleteReadError, ValueError) as err:
        stats["errors"].append(f"connection: {err!r}")
    finally:
        writer.close()


def scheduler_info(port: int, model: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models") as answer:
        (info,) = [m for m in json.load(answer)["models"] if m["name"] == model]
    return info["details"]["scheduler"]


def measure_generate(
    name: str, run: str, mode: str, prompts: list[str], clients: int, duration: float, port: int, args: argparse.Namespace
) -> dict:
    extra = [
        "--threads",
        str(args.threads),
        "--max-active",
        str(args.max_active),
        "--max-queue",
        "64",
        "--timeout",
        "600",
        "--max-new-tokens",
        str(max(args.new_tokens, 256)),
    ]
    extra += ["--engine", args.engine] if args.engine else []
    extra += ["--dtype", args.dtype] if args.dtype else []
    server = start_server(name, run, port, 32, 5.0, tuple(extra))
    clients = clients if mode == "batched" else 1
    try:
        process = psutil.Process(server.pid)

        async def load(seconds: float) -> tuple[dict[str, list], float]:
            stats: dict[str, list] = {"ttft": [], "itl": [], "requests": [], "errors": []}
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    stream_client(
                        port, prompts, name, args.new_tokens, started + seconds, seed, stats, delay=seed * args.stagger / clients
                    )
                    for seed in range(clients)
                )
            )
            return stats, time.perf_counter() - started

        asyncio.run(load(args.warmup))  # first calls, allocator pools, each batch size the run will see
        before = scheduler_info(port, name)
        rss_before = process.memory_info().rss
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(duration / 10):
                samples.append(process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stats, seconds = asyncio.run(load(duration))
        stop.set()
        sampler.join()
        after = scheduler_info(port, name)
        rss_after = process.memory_info().rss
    finally:
        server.terminate()
        server.wait(timeout=30)
    tokens = after["tokens"] - before["tokens"]
    steps = after["steps"] - before["steps"]

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(1000 * ordered[int(q * (len(ordered) - 1))], 1) if ordered else float("nan")

    return {
        "model": name,
        "run": run,
        "mode": mode,
        "clients": clients,
        "seconds": round(seconds, 1),
        "requests": len(stats["requests"]),
        "tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1),
        "ttft_p50_ms": pct(stats["ttft"], 0.5),
        "ttft_p99_ms": pct(stats["ttft"], 0.99),
        "itl_p50_ms": pct(stats["itl"], 0.5),
        "itl_p99_ms": pct(stats["itl"], 0.99),
        "errors": len(stats["errors"]),
        "first_errors": stats["errors"][:3],
        "batching": after["batching"],
        "mean_batch": round((after["mean_batch"] * after["steps"] - before["mean_batch"] * before["steps"]) / max(steps, 1), 2),
        "rss_before_mb": round(rss_before / 2**20, 1),
        "rss_after_mb": round(rss_after / 2**20, 1),
        "rss_during_mb": [round(rss / 2**20) for rss in samples],
    }


def main_generate(args: argparse.Namespace, prompts: list[str]) -> None:
    rows = []
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    for spec in args.run:
        name, _, run = spec.partition("=")
        for mode in [m for m in args.modes.split(",") if m]:
            row = measure_generate(name, run, mode, prompts, args.clients, args.duration, args.port, args)
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(
        "\n| model | clients | tokens/s | TTFT p50 / p99 ms | inter-token p50 / p99 ms | requests | errors | mean batch | server RSS before → after (MB) | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['clients']} | {row['tokens_per_s']} | {row['ttft_p50_ms']} / {row['ttft_p99_ms']} "
            f"| {row['itl_p50_ms']} / {row['itl_p99_ms']} | {row['requests']} | {row['errors']} | {row['mean_batch']} "
            f"| {row['rss_before_mb']} → {row['rss_after_mb']} | {row['load_average']} |"
        )
    for name in dict.fromkeys(row["model"] for row in rows):
        modes = {row["mode"]: row for row in rows if row["model"] == name}
        if {"batched", "single"} <= modes.keys():
            ratio = modes["batched"]["tokens_per_s"] / modes["single"]["tokens_per_s"]
            print(
                f"{name}: {modes['batched']['clients']} streaming clients get {ratio:.2f}× the tokens/s of one client at a time"
            )
    if args.output:
        args.output.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="NAME=RUN folder of a classify run, or of a generate model with --task generate (repeatable)",
    )
    parser.add_argument("--task", choices=["classify", "generate"], default="classify")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per run and mode")
    parser.add_argument("--modes", default="batched,single", help="batched (--max-batch-size --batch-size) and/or single (1)")
    parser.add_argument("--batch-size", type=int, default=32, help="--max-batch-size of the batched server")
    parser.add_argument("--wait-ms", type=float, default=5.0, help="--batch-wait-ms of the batched server")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--ceiling-seconds", type=float, default=10.0, help="seconds per size of the in-process predict() measure (0: skip)"
    )
    parser.add_argument("--output", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--new-tokens", type=int, default=64, help="generate: max_new_tokens of each request")
    parser.add_argument("--max-active", type=int, default=16, help="generate: the server's --max-active")
    parser.add_argument("--engine", help="generate: the server's --engine (seqlab: in-flight batching)")
    parser.add_argument("--dtype", help="generate: the server's --dtype")
    parser.add_argument("--threads", type=int, default=1, help="generate: the server's --threads (classify: always 1)")
    parser.add_argument("--warmup", type=float, default=15.0, help="generate: seconds of load before the measured run")
    parser.add_argument(
        "--stagger",
        type=float,
        default=5.0,
        help="generate: the clients' first requests are spread evenly over this many seconds (as users "
        "arrive), not sent in one wave",
    )
    args = parser.parse_args()

    from seqlab.data.datasets import load_examples

    texts = [example.text for example in load_examples("rt-polarity")]
    if args.task == "generate":
        main_generate(args, texts)
        return
    rows, ceilings = [], {}
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    for spec in args.run:
        name, _, run = spec.partition("=")
        for mode in [m for m in args.modes.split(",") if m]:
            row = measure(name, run, mode, texts, args.clients, args.duration, args.port, args.batch_size, args.wait_ms)
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            print(json.dumps(row), flush=True)
            rows.append(row)
        if args.ceiling_seconds > 0:
            ceilings[name] = pipeline_ceiling(run, texts, args.batch_size, args.ceiling_seconds)
            print(json.dumps({"model": name, "predict_in_process": ceilings[name]}), flush=True)
    print("\n| model | serving | requests/s | p50 ms | p99 ms | errors | mean batch | server RSS before → after (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model']} | {row['mode']} | {row['requests_per_s']} | {row['p50_ms']} | {row['p99_ms']} | {row['errors']} "
            f"| {row['mean_batch']} | {row['rss_before_mb']} → {row['rss_after_mb']} |"
        )
    for name in dict.fromkeys(row["model"] for row in rows):
        modes = {row["mode"]: row for row in rows if row["model"] == name}
        if {"batched", "single"} <= modes.keys():
            ratio = modes["batched"]["requests_per_s"] / modes["single"]["requests_per_s"]
            print(f"{name}: micro-batching serves {ratio:.2f}× the requests/s of batch-size-1")
        if name in ceilings:
            c = ceilings[name]
            print(
                f"{name}: predict() in process, {args.batch_size} texts per call {c['batched_texts_per_s']} texts/s, "
                f"one per call {c['single_texts_per_s']} texts/s ({c['ratio']}×)"
            )
    if args.output:
        args.output.write_text(json.dumps({"rows": rows, "predict_in_process": ceilings}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
