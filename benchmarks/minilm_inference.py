"""MiniLM-L6 inference speed: seqlab's inference paths against Hugging Face fp32 eager.

    python benchmarks/minilm_inference.py [--repeats 7] [--batch 32] [--length 128] [--run RUN]

All paths run on the same (batch × length) inputs in one process, alternating within every
repeat (so load on a shared machine hits them alike), median of `--repeats`:
- `hf fp32 eager`: `AutoModel.from_pretrained(..., attn_implementation="eager")`, the reference;
- `torch fp32 sdpa`: seqlab's PyTorch path (`api.load(run, backend="torch")`);
- `torch bf16`: weights and activations in bfloat16 (only where the CPU has AVX512_BF16/AMX);
- `torch int8 dynamic`: `torch.ao.quantization.quantize_dynamic` on every Linear layer;
- with `--run` (a fine-tuned `--arch hf` run folder; it is not modified, the ONNX files are
  written to a temporary folder), ONNX Runtime on the graphs `seqlab export` writes:
  `ort fp32` (model.onnx: fused Attention/LayerNorm/GELU), `ort int8` (model.int8.onnx: every
  MatMul and Attention int8; the default inference path of an hf run) and `ort int8, FFN out
  fp32` (the second feed-forward linear of every layer kept fp32).
The torch paths time the encoder; the ONNX graphs include pooling and the head (2 × 384 weights,
negligible). With `--run` each path also classifies the run's test split of rt-polarity, so speed
comes with the accuracy it costs and the share of labels that agree with fp32.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from seqlab import hub
from seqlab.trainer import bf16_supported


def torch_paths(encoder) -> dict:
    """name → a callable encoder variant (each an independent copy)."""
    from transformers import AutoModel

    variants = {
        "hf fp32 eager": AutoModel.from_pretrained(hub.resolve("minilm-l6"), attn_implementation="eager").eval(),
        "torch fp32 sdpa": encoder.eval(),
    }
    variants["hf fp32 eager"].load_state_dict(encoder.state_dict())  # the same (fine-tuned) weights everywhere
    if bf16_supported():
        variants["torch bf16"] = copy.deepcopy(encoder).to(torch.bfloat16).eval()
    variants["torch int8 dynamic"] = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(encoder), {torch.nn.Linear}, dtype=torch.qint8
    )
    return variants


def onnx_files(run: str, folder: Path) -> dict[str, Path]:
    """Export the run's classifier into `folder`: fp32, int8, int8 with FFN outputs fp32."""
    from seqlab.tasks.classify import export

    fp32 = export.export_onnx(run, output=folder / "model.onnx", quantize="int8")
    ffn = folder / "model.int8-ffn-fp32.onnx"
    export.quantize_int8(fp32, ffn, keep_ffn_output_fp32=True)
    return {"ort fp32": fp32, "ort int8": export.int8_path(fp32), "ort int8, FFN out fp32": ffn}


def timed_alternating(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds per call of each function, the functions taking turns within each repeat."""
    for fn in fns.values():
        fn()  # warm-up: kernels, caches, ONNX Runtime's first-run allocations
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--run", default=None, help="a fine-tuned hf run: also ONNX Runtime paths, and test accuracy per path")
    args = parser.parse_args()
    load_before = os.getloadavg()

    pipe = None
    if args.run:
        from seqlab import api

        pipe = api.load(args.run, backend="torch")
        encoder = pipe.model.encoder
    else:
        encoder = hub.load_encoder("minilm-l6")
    variants = torch_paths(encoder)
    torch.manual_seed(0)
    ids = torch.randint(1000, encoder.config.vocab_size, (args.batch, args.length))
    mask = torch.ones_like(ids)
    fns = {name: (lambda m=model: m(input_ids=ids, attention_mask=mask)) for name, model in variants.items()}
    with tempfile.TemporaryDirectory(prefix="minilm-onnx-") as scratch:
        sessions = {}
        if args.run:
            from seqlab.tasks.classify.export import OnnxClassifier

            sessions = {name: OnnxClassifier(path) for name, path in onnx_files(args.run, Path(scratch)).items()}
            fns.update({name: (lambda s=session: s(ids, mask)) for name, session in sessions.items()})
        with torch.inference_mode():
            seconds = timed_alternating(fns, args.repeats)
        load_after = os.getloadavg()
        scores = measure_accuracy(pipe, variants, sessions) if pipe is not None else {}

    base = seconds["hf fp32 eager"]
    print(
        f"\ntorch {torch.__version__}, {torch.get_num_threads()} threads, bf16 instructions: {bf16_supported()}; "
        f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after timing; "
        f"batch {args.batch} × {args.length} tokens, median of {args.repeats}\n"
    )
    print("| path | ms / batch | sentences/s | speed-up vs HF fp32 eager | MR test accuracy | same label as fp32 |")
    print("|---|---|---|---|---|---|")
    for name, secs in seconds.items():
        accuracy, agree = scores.get(name, (None, None))
        acc = f"{100 * accuracy:.2f}%" if accuracy is not None else "–"
        same = f"{100 * agree:.1f}%" if agree is not None else "–"
        print(f"| {name} | {1000 * secs:.0f} | {args.batch / secs:,.0f} | {base / secs:.2f}× | {acc} | {same} |")


def measure_accuracy(pipe, variants: dict, sessions: dict) -> dict[str, tuple[float, float]]:
    """name → (test accuracy, share of test labels equal to the fp32 path's), each variant
    swapped into the fine-tuned run's pipeline in turn."""
    from seqlab.tasks.classify import recipe as classify

    test = classify.load_splits(pipe.config).test
    gold = torch.tensor([pipe.labels.index(ex.label) for ex in test])
    texts = [ex.text for ex in test]
    torch_model, tuned = pipe.model, pipe.model.encoder
    probabilities = {}
    for name, variant in variants.items():
        pipe.model.encoder = variant
        pipe.model.head.to(torch.bfloat16 if name == "torch bf16" else torch.float32)
        probabilities[name] = pipe.predict_proba(texts)
    pipe.model.encoder = tuned
    pipe.model.head.float()
    for name, session in sessions.items():
        pipe.model = session
        probabilities[name] = pipe.predict_proba(texts)
    pipe.model = torch_model
    reference = probabilities["torch fp32 sdpa"].argmax(-1)
    return {
        name: (float((p.argmax(-1) == gold).float().mean()), float((p.argmax(-1) == reference).float().mean()))
        for name, p in probabilities.items()
    }


if __name__ == "__main__":
    main()
