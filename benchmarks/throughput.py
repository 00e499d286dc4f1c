"""Training throughput per architecture, and length-bucketed vs random-order batching.

    python benchmarks/throughput.py [--archs lstm,bilstm,gru,cnn,transformer] [--repeats 5] [--batches 60]

For each architecture (preset `small`, the default config otherwise) on the rt-polarity training
split: real (non-padding) tokens processed per second of training (forward, backward, clipping,
optimiser step: what `seqlab.trainer.fit` runs per batch), over the same `--batches` batches, with
bucketed and with random batches. Median of `--repeats` runs, both orders measured in the same
run, alternating, so machine noise hits both alike. Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from seqlab.config import build_config
from seqlab.data.batching import BucketBatchSampler, collate
from seqlab.models import build_classifier, count_parameters
from seqlab.tasks.classify import recipe as classify


def measure(model, module, optimizer, ids, labels, batch_size, bucket, batches, seed) -> tuple[float, float]:
    """(real tokens per second, fraction of positions that were padding) over `batches` batches."""
    sampler = BucketBatchSampler([len(x) for x in ids], batch_size, shuffle=True, bucket=bucket, seed=seed)
    chosen = list(sampler)[:batches]
    prepared = [collate([(ids[i], labels[i]) for i in batch]) for batch in chosen]
    real = sum(int(b["attention_mask"].sum()) for b in prepared)
    positions = sum(b["attention_mask"].numel() for b in prepared)
    model.train()
    started = time.perf_counter()
    for batch in prepared:
        loss = module.loss(model(batch["input_ids"], batch["attention_mask"]).logits, batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return real / (time.perf_counter() - started), 1 - real / positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="lstm,bilstm,gru,cnn,transformer")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args()

    base = build_config({}, ["data.train=rt-polarity"])
    splits = classify.load_splits(base)
    rows = []
    for arch in args.archs.split(","):
        cfg = build_config({}, ["data.train=rt-polarity", f"model.arch={arch}"])
        tokenizer, label_names = classify.learn_vocabulary(cfg, splits.train)
        enc = classify.encode_split(splits.train, tokenizer, label_names, cfg.tokenizer.max_length)
        torch.manual_seed(0)
        model = build_classifier(cfg.model, tokenizer.get_vocab_size(), len(label_names))
        module = classify.ClassifierModule(model, len(label_names), cfg.model.head, cfg.train)
        optimizer = module.configure_optimizers()
        measure(model, module, optimizer, enc.ids, enc.labels, args.batch_size, True, 5, 99)  # warm-up
        speeds = {True: [], False: []}
        padding = {}
        for repeat in range(args.repeats):
            for bucket in (True, False):
                speed, pad = measure(model, module, optimizer, enc.ids, enc.labels, args.batch_size, bucket, args.batches, repeat)
                speeds[bucket].append(speed)
                padding[bucket] = pad
        bucketed, plain = statistics.median(speeds[True]), statistics.median(speeds[False])
        rows.append((arch, count_parameters(model), bucketed, plain, bucketed / plain, padding[True], padding[False]))
        print(f"{arch}: bucketed {bucketed:,.0f} tok/s, random {plain:,.0f} tok/s, ×{bucketed / plain:.2f}", flush=True)

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"median of {args.repeats} runs × {args.batches} batches of {args.batch_size}\n"
    )
    print("| arch | parameters | bucketed tok/s | random-order tok/s | speed-up | padding (bucketed / random) |")
    print("|---|---|---|---|---|---|")
    for arch, params, bucketed, plain, ratio, pad_b, pad_r in rows:
        print(
            f"| {arch} | {params:,} | {bucketed:,.0f} | {plain:,.0f} | {ratio:.2f}× | {100 * pad_b:.0f}% / {100 * pad_r:.0f}% |"
        )


if __name__ == "__main__":
    main()
