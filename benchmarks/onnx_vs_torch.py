"""ONNX Runtime against PyTorch, fp32, on the same inputs: what `seqlab export` buys per architecture.

    python benchmarks/onnx_vs_torch.py [--archs cnn,bilstm,transformer] [--minilm RUN] [--sentences 512] [--repeats 5]

For each architecture (the default config: preset `small`) a run is trained for one epoch on
1,000 rt-polarity sentences in a temporary folder (the weights do not matter for speed), exported
with `seqlab.tasks.classify.export.export_onnx` (which checks that its logits are within 1e-4 of PyTorch's), and
both backends classify the same `--sentences` test sentences, tokenized and padded once, in
batches of `--batch` (seqlab's own prediction batching). `--minilm` adds a fine-tuned `--arch hf`
run (MiniLM; not modified: its ONNX file goes to the temporary folder). Both backends use
`torch.get_num_threads()` threads; they alternate within every repeat; median of `--repeats`.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from seqlab import api, runs
from seqlab.config import build_config
from seqlab.data.batching import pad_batch
from seqlab.data.tokenize import encode
from seqlab.models import count_parameters
from seqlab.tasks.classify import export
from seqlab.tasks.classify import recipe as classify


def train_quick(arch: str, folder: Path) -> Path:
    cfg = build_config(
        {},
        [
            f"model.arch={arch}",
            "data.limit=1000",
            "train.epochs=1",
            "train.precision=32-true",
            f"output_dir={folder}",
            f"name={arch}",
        ],
    )
    return api.train(cfg, progress="off")


def batches(files: runs.RunFiles, texts: list[str], size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ids, _ = encode(files.tokenizer, texts, files.config.tokenizer.max_length)
    return [pad_batch(ids[start : start + size]) for start in range(0, len(ids), size)]


def compare(run: Path, onnx_file: Path, texts: list[str], batch: int, repeats: int) -> dict:
    """Seconds to classify `texts` with each backend, and the max |logit difference|."""
    files = runs.open_run(run)
    torch_model = api.load(run, backend="torch").model
    session = export.OnnxClassifier(onnx_file)
    prepared = batches(files, texts, batch)
    backends = {"torch": torch_model, "onnx": session}
    times: dict[str, list[float]] = {name: [] for name in backends}
    with torch.inference_mode():
        diff = max(float((session(i, m).logits - torch_model(i, m).logits).abs().max()) for i, m in prepared)
        for model in backends.values():
            model(*prepared[0])  # warm-up
        for _ in range(repeats):
            for name, model in backends.items():
                started = time.perf_counter()
                for ids, mask in prepared:
                    model(ids, mask)
                times[name].append(time.perf_counter() - started)
    return {
        "diff": diff,
        **{name: statistics.median(values) for name, values in times.items()},
        "parameters": count_parameters(torch_model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default="cnn,bilstm,transformer")
    parser.add_argument("--minilm", default=None, help="a fine-tuned hf run folder (MiniLM)")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    texts = [ex.text for ex in classify.load_splits(build_config({}, [])).test][: args.sentences]
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory(prefix="onnx-vs-torch-") as scratch:
        scratch = Path(scratch)
        targets = [(arch, train_quick(arch, scratch), None) for arch in args.archs.split(",") if arch]
        if args.minilm:
            targets.append(("minilm (hf)", Path(args.minilm), scratch / "minilm.onnx"))
        for name, run, output in targets:
            onnx_file = export.export_onnx(run, output=output)
            results[name] = compare(run, onnx_file, texts, args.batch, args.repeats)
    load_after = os.getloadavg()

    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {len(texts)} rt-polarity test sentences in batches "
        f"of {args.batch}, median of {args.repeats}\n"
    )
    print("| model | parameters | PyTorch sent/s | ONNX Runtime sent/s | ORT speed-up | max abs logit diff |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['parameters']:,} | {len(texts) / r['torch']:,.0f} | {len(texts) / r['onnx']:,.0f} | "
            f"{r['torch'] / r['onnx']:.2f}× | {r['diff']:.1e} |"
        )


if __name__ == "__main__":
    main()
