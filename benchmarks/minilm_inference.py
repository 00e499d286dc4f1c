"""MiniLM-L6 inference speed: seqlab's inference paths against Hugging Face fp32 eager.

    python benchmarks/minilm_inference.py [--repeats 7] [--batch 32] [--length 128] [--run RUN]

All paths run the same real all-MiniLM-L6-v2 weights on the same (batch × length) inputs in one
process, alternating, median of `--repeats`:
- `hf fp32 eager`: `AutoModel.from_pretrained(..., attn_implementation="eager")`, the reference;
- `fp32 sdpa`: PyTorch's fused attention kernel;
- `bf16`: weights and activations in bfloat16 (only where the CPU has AVX512_BF16/AMX);
- `int8 dynamic`: `torch.ao.quantization.quantize_dynamic` on every Linear layer.
With `--run` (a fine-tuned `--arch hf` run folder) each path also classifies the run's test split
of rt-polarity, so speed comes with the accuracy it costs.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from seqlab import hub
from seqlab.train import bf16_supported


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: kernels, caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def paths(encoder) -> dict:
    """name → encoder variant (each an independent copy)."""
    from transformers import AutoModel

    variants = {"hf fp32 eager": AutoModel.from_pretrained(hub.resolve("minilm-l6"), attn_implementation="eager").eval(),
                "fp32 sdpa": encoder.eval()}
    if bf16_supported():
        variants["bf16"] = copy.deepcopy(encoder).to(torch.bfloat16).eval()
    variants["int8 dynamic"] = torch.ao.quantization.quantize_dynamic(copy.deepcopy(encoder), {torch.nn.Linear}, dtype=torch.qint8)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--run", default=None, help="a fine-tuned hf run: also measure test accuracy per path")
    args = parser.parse_args()

    encoder = hub.load_encoder("minilm-l6")
    variants = paths(encoder)
    torch.manual_seed(0)
    ids = torch.randint(1000, encoder.config.vocab_size, (args.batch, args.length))
    mask = torch.ones_like(ids)
    seconds = {}
    with torch.inference_mode():
        for name, model in variants.items():
            seconds[name] = timed(lambda m=model: m(input_ids=ids, attention_mask=mask), args.repeats)
    accuracy = measure_accuracy(args.run, variants) if args.run else {}
    base = seconds["hf fp32 eager"]
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, bf16 instructions: {bf16_supported()}; "
          f"batch {args.batch} × {args.length} tokens, median of {args.repeats}\n")
    print("| path | ms / batch | sentences/s | speed-up vs HF fp32 eager | MR test accuracy |")
    print("|---|---|---|---|---|")
    for name, secs in seconds.items():
        acc = f"{100 * accuracy[name]:.2f}%" if name in accuracy else "–"
        print(f"| {name} | {1000 * secs:.0f} | {args.batch / secs:,.0f} | {base / secs:.2f}× | {acc} |")


def measure_accuracy(run: str, variants: dict) -> dict:
    """Swap each encoder variant into the fine-tuned run and score its test split."""
    from seqlab import api
    from seqlab.tasks import classify

    pipe = api.load(run)
    tuned_encoder = pipe.model.encoder
    tuned = tuned_encoder.state_dict()
    splits = classify.load_splits(pipe.config)
    scores = {}
    for name, variant in variants.items():
        if name == "int8 dynamic":
            variant = torch.ao.quantization.quantize_dynamic(copy.deepcopy(tuned_encoder), {torch.nn.Linear}, dtype=torch.qint8)
        else:
            variant.load_state_dict(tuned)
        pipe.model.encoder = variant
        pipe.model.head.to(next(variant.parameters()).dtype if name == "bf16" else torch.float32)
        scores[name] = pipe.evaluate(splits.test)["accuracy"]
        pipe.model.head.float()
    return scores


if __name__ == "__main__":
    main()
