"""Batched generation: aggregate tokens/s of seqlab's `GeneratorPipeline.generate(prompts,
batch_size=B)` against Hugging Face `generate` on the same left-padded batch, at B = 1, 4, 16.

    python benchmarks/batched_generate.py --paths hf-fp32,seqlab-fp32,seqlab-bf16-int4 \
        --batch-sizes 1,4,16 --new-tokens 64 --repeats 3 --output batched.json

Model: the built-in smollm2-135m. Prompts: 16 windows of `--prompt-tokens` tokens of held-out
Shakespeare (the last 10% of the built-in text), the first B of them for batch size B; every
row decodes exactly `--new-tokens` greedy tokens (no end-of-text stop), so aggregate tokens/s =
B · new_tokens / seconds of the whole call (prompt and every step).

Paths: `hf-fp32` is transformers `generate` in float32 (the reference); `seqlab-<dtype>` is
`api.load_generator("smollm2-135m", engine="seqlab", dtype=...)`, seqlab's own Llama. Each path
lives in its own worker process (spawned: its own allocator, its own threads) that loads its
model once; every (path, batch size) decodes once untimed, then the timed repeats go round robin
over paths and batch sizes, so a change in the machine's load touches them alike. The median
repeat is reported, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

MODEL = "smollm2-135m"


def _prompts(count: int, length: int) -> list[str]:
    """`count` different prompts of `length` tokens (as text), from held-out Shakespeare."""
    from transformers import AutoTokenizer

    from seqlab import hub
    from seqlab.tasks.lm.inference import load_text

    tokenizer = AutoTokenizer.from_pretrained(hub.resolve_causal_lm(MODEL))
    text = load_text("shakespeare", max_chars=100_000_000)
    held_out = text[int(0.9 * len(text)) :][: 8 * count * length]
    ids = tokenizer(held_out, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode(ids[i * length : (i + 1) * length]) for i in range(count)]


def _worker(conn, path: str, threads: int) -> None:
    """Load `path`'s model, then answer (prompts, new_tokens) with (seconds, row 0's text)."""
    import torch

    torch.set_num_threads(threads)
    from seqlab import api, decoding

    if path == "hf-fp32":
        from seqlab import hub

        model, tokenizer = hub.load_causal_lm(MODEL)
        model.eval()
        model.generation_config.eos_token_id = None  # exactly new_tokens per row
        encoded: dict[tuple[str, ...], tuple] = {}

        def decode(prompts: list[str], new_tokens: int) -> str:
            if tuple(prompts) not in encoded:  # (tokenised once, before the timed calls)
                encoded[tuple(prompts)] = decoding.left_pad(
                    [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts], 0
                )
            ids, mask = encoded[tuple(prompts)]
            with torch.inference_mode():
                out = model.generate(
                    ids,
                    attention_mask=mask.long(),
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=0,
                )
            return tokenizer.decode(out[0, ids.size(1) :], skip_special_tokens=True)
    else:
        pipe = api.load_generator(MODEL, engine="seqlab", dtype=path.removeprefix("seqlab-"))

        def decode(prompts: list[str], new_tokens: int) -> str:  # the pipeline as a user calls it: text in, text out
            return pipe.generate(prompts, batch_size=len(prompts), max_new_tokens=new_tokens, eos_token_id=None)[0]

    conn.send("ready")
    while True:
        message = conn.recv()
        if message is None:
            return
        prompts, new_tokens = message
        started = time.perf_counter()
        text = decode(prompts, new_tokens)
        conn.send((time.perf_counter() - started, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", default="hf-fp32,seqlab-fp32,seqlab-bf16-int4")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    paths = [p for p in args.paths.split(",") if p]
    sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    prompts = _prompts(max(sizes), args.prompt_tokens)
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before: {load_before}, {os.cpu_count()} CPUs, {args.threads} threads per worker", flush=True)
    context = multiprocessing.get_context("spawn")
    workers = {}
    for path in paths:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, path, args.threads), daemon=True)
        process.start()
        assert parent.recv() == "ready"
        workers[path] = (parent, process)
    times: dict[tuple[str, int], list[float]] = {(p, b): [] for p in paths for b in sizes}
    firsts: dict[tuple[str, int], str] = {}
    try:
        for path in paths:  # warm-up: allocations, kernel choices
            for size in sizes:
                workers[path][0].send((prompts[:size], args.new_tokens))
                _, firsts[(path, size)] = workers[path][0].recv()
        for repeat in range(args.repeats):
            for size in sizes:
                for path in paths:
                    workers[path][0].send((prompts[:size], args.new_tokens))
                    seconds, _ = workers[path][0].recv()
                    times[(path, size)].append(seconds)
                    print(
                        f"repeat {repeat + 1}: {path} batch {size}: {size * args.new_tokens / seconds:.1f} tokens/s", flush=True
                    )
    finally:
        for parent, process in workers.values():
            parent.send(None)
            process.join(timeout=30)
    load_after = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for (path, size), seconds in times.items():
        median = statistics.median(seconds)
        rows.append(
            {
                "path": path,
                "batch": size,
                "seconds": round(median, 3),
                "tokens_per_s": round(size * args.new_tokens / median, 1),
                "runs_tokens_per_s": [round(size * args.new_tokens / s, 1) for s in seconds],
            }
        )
    reference = {row["batch"]: row["tokens_per_s"] for row in rows if row["path"] == "hf-fp32"}
    print(f"\nload average after: {load_after}")
    print("\n| path | batch | tokens/s (aggregate) | × hf-fp32 same batch | × same path batch 1 |")
    print("|---|---|---|---|---|")
    single = {row["path"]: row["tokens_per_s"] for row in rows if row["batch"] == 1}
    for row in rows:
        ratio = f"{row['tokens_per_s'] / reference[row['batch']]:.2f}×" if row["batch"] in reference else "–"
        scale = f"{row['tokens_per_s'] / single[row['path']]:.2f}×" if row["path"] in single else "–"
        print(f"| {row['path']} | {row['batch']} | {row['tokens_per_s']} | {ratio} | {scale} |")
    for path in paths:  # greedy: the paths should agree (fp32 exactly; quantised weights may drift)
        print(f"{path}, row 0 at batch {sizes[-1]}: {firsts[(path, sizes[-1])][:60]!r}")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "settings": vars(args) | {"output": str(args.output)},
                    "load_average": {"before": load_before, "after": load_after},
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
