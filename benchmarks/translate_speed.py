"""Translation on Tatoeba: training throughput per architecture, and batched beam search against
one sentence at a time, on real sentences.

    python benchmarks/translate_speed.py [--archs seq2seq,bahdanau,luong,transformer] [--preset base]
        [--steps 20] [--warmup 3] [--train-steps 150] [--sentences 100] [--beam 5] [--repeats 3]
        [--precision fp32,bf16] [--run RUN ...]

Data: tatoeba-en-fr's standard splits (held out by English sentence); a joint BPE vocabulary of
8,000 pieces learned on the first 30,000 training pairs (the training side only).

- **Throughput**: target tokens (labels, [EOS] included) per second of training steps (forward,
  label-smoothed loss, backward, clipping, AdamW step: what `trainer.fit` runs per batch) on
  `train.batch_tokens=4096` batches, the median over `--steps` steps after `--warmup`, each
  precision measured in turn on the same batches so machine noise hits them alike.
- **Batched beam speed-up**: each architecture is trained `--train-steps` steps first (so that
  its translations end where sentences end, not at the length limit), then the same
  `--sentences` test sources are decoded with beam `--beam` in batches of 64 and one at a time;
  the speed-up is the ratio of the two times (median of `--repeats`); `--run RUN` measures a
  finished translate run instead (e.g. the 45-minute Transformer).

The load average is printed with every table: on a shared machine the absolute numbers move
with it, the ratios much less. Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from seqlab.data import tatoeba
from seqlab.models import count_parameters
from seqlab.tasks.translate import compare as translate_compare
from seqlab.tasks.translate import recipe as translate

ARCHS = {"seq2seq": "seq2seq", "bahdanau": "bahdanau", "luong": "luong", "transformer": "transformer"}


def load() -> str:
    return " / ".join(open("/proc/loadavg").read().split()[:3])


def setup(arch: str, preset: str, train_pairs: list, vocab: translate.Vocabularies | None):
    cfg = translate_compare.entry_config(
        {"data": {"train": "tatoeba-en-fr"}},
        arch,
        [
            f"model.preset={preset}",
            "translate.shared_vocab=true",
            "tokenizer.vocab_size=8000",
            "train.batch_tokens=4096",
            *(["model.share_embeddings=true"] if arch == "transformer" else []),
        ],
    )
    vocab = vocab or translate.learn_vocabularies(cfg, train_pairs)
    torch.manual_seed(0)
    model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    return cfg, vocab, model


def train_steps(model, batches, precision: str, optimizer) -> list[float]:
    """Target tokens per second of each step."""
    rates = []
    model.train()
    for batch in batches:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            total, count, _, _ = translate.token_scores(model, batch, label_smoothing=0.1)
        (total / count).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rates.append(count / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="seq2seq,bahdanau,luong,transformer")
    parser.add_argument("--preset", default="base")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--run", action="append", default=[], help="also measure the decoding speed-up of this translate run")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    splits = tatoeba.load_splits("tatoeba-en-fr")
    train_pairs = splits.train[:30000]
    precisions = args.precision.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load {load()}")
    throughput, speed = [], []
    vocab = None
    for arch in filter(None, args.archs.split(",")):
        cfg, vocab, model = setup(arch, args.preset, train_pairs, vocab)
        loader = translate.make_loader(translate.encode_pairs(vocab, train_pairs, 128), 64, shuffle=True, max_tokens=4096, seed=0)
        batches = [batch for _, batch in zip(range(args.warmup + args.steps), loader)]
        optimizer = torch.optim.AdamW(model.parameters(), lr=7e-4, betas=(0.9, 0.98), fused=True)
        if not args.skip_throughput:
            rates = {p: [] for p in precisions}
            for batch in batches:  # precisions take turns on each batch
                for p in precisions:
                    rates[p] += train_steps(model, [batch], p, optimizer)
            row = [arch, f"{count_parameters(model):,}"] + [
                f"{statistics.median(rates[p][args.warmup :]):,.0f}" for p in precisions
            ]
            throughput.append(row)
            print("| " + " | ".join(row) + f" |  (load {load()})", flush=True)
        if args.sentences:  # (--sentences 0: throughput only)
            more = [b for _, b in zip(range(args.train_steps), loader)]
            train_steps(model, more, "fp32", optimizer)
            speed.append(decode_speed(arch, model.eval(), vocab, cfg, splits.test, args))
    for run in args.run:
        pipe = translate_run(run)
        speed.append(decode_speed(Path(run).name, pipe.model, pipe.vocab, pipe.config, splits.test, args))
    print(f"\n| arch | parameters | {' | '.join(f'train target tok/s ({p})' for p in precisions)} |")
    print("|---|---|" + "---|" * len(precisions))
    for row in throughput:
        print("| " + " | ".join(row) + " |")
    print(f"\n| model | beam | sentences | batched sent/s | one at a time sent/s | speed-up | same output |  (load {load()})")
    print("|---|---|---|---|---|---|---|")
    for row in speed:
        print("| " + " | ".join(row) + " |")


def translate_run(run: str):
    from seqlab import api

    return api.load_translator(run)


def decode_speed(name: str, model, vocab, cfg, test, args) -> list[str]:
    settings = translate.DecodeSettings.from_config(cfg, beam=args.beam)
    sources = translate.encode_sources(vocab.source, [r.source for r in test[: args.sentences]], cfg.tokenizer.max_length).ids
    results = [translate_compare.decode_speed(model, vocab, sources, settings) for _ in range(args.repeats)]
    batched = statistics.median(r["batched"] for r in results)
    single = statistics.median(r["single"] for r in results)
    row = [
        name,
        str(args.beam),
        str(len(sources)),
        f"{batched:,.1f}",
        f"{single:,.1f}",
        f"{statistics.median(r['speedup'] for r in results):.1f}×",
        f"{results[0]['agreement']:.0%}",
    ]
    print("| " + " | ".join(row) + f" |  (load {load()})", flush=True)
    return row


if __name__ == "__main__":
    main()
