"""`seqlab experiment decoder` (course Q4, Q8, Q10, Q11, Q17): how a decoder generates.

An encoder reads the whole source at once, every position seeing every other; a decoder
writes the output one token at a time, each new token seeing only the tokens before it (causal
self-attention) and, in an encoder-decoder, the encoder's states (cross-attention). Four views,
all measured on the translation task's own models (`tasks.translate`), trained on the built-in
`reverse` data (letters → the same letters reversed):

1. **Step by step** (`steps.md`): greedy decoding of one held-out source with the Transformer
   encoder-decoder's `step`, one token per call: the token fed in, the token chosen and its
   probability, how many positions the self-attention KV cache holds, which source letter the
   cross-attention looks at most, and the largest difference between the cached step's logits
   and a full recomputation of the whole prefix (the cache changes the cost, not the result).
2. **The cost of the cache** (`kv_cache.md`): seqlab's GPT (`models.gpt`, decoder-only, the
   GPT-2 layout; random weights, since this is arithmetic, not quality) generating greedily
   through `seqlab.decoding` with its KV cache, against recomputing the whole prefix for every
   new token; the same tokens, and the time of each.
3. **Maps** (`decoder_attention.png`): per layer and head, the decoder's causal self-attention
   (lower-triangular: nothing looks ahead) and its cross-attention over the source (for a
   reversal, an anti-diagonal).
4. **With and without attention, by source length** (the table): `seq2seq` (one fixed context
   vector), `seq2seq-attn` (Bahdanau) and `transformer` trained as `seqlab compare translate`
   trains them (`attention_vs_fixed_context.train_entry`), exact match by source length.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from seqlab import decoding
from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.experiments.attention_vs_fixed_context import BASE, Trained, score_by_length, train_entry
from seqlab.models.gpt import GPT
from seqlab.tasks.translate import recipe as translate

NAME = "decoder"
ENTRIES = ("seq2seq", "seq2seq-attn", "transformer")
BUCKETS = ((1, 4), (5, 9), (10, 12))  # source letters


def settings(quick: bool) -> dict:
    """Data, sizes and budget; quick: the table's shape in seconds, no verdict."""
    if quick:
        return {
            "data": "reverse:600",
            "epochs": 1,
            "test": 60,
            "rnn": 16,
            "d_model": 16,
            "gpt_tokens": [8, 16],
            "gpt": {"d_model": 32, "num_heads": 2, "num_layers": 2, "ff_dim": 64},
        }
    return {
        "data": "reverse:10000",
        "epochs": 6,
        "test": None,
        "rnn": 64,
        "d_model": 64,
        "gpt_tokens": [32, 128, 384],
        "gpt": {"d_model": 128, "num_heads": 4, "num_layers": 4, "ff_dim": 512},
    }


def run(quick: bool, output: Path, seed: int = 13) -> ExperimentResult:
    """Train the three encoder-decoders, then decode and draw; writes `steps.md`, `kv_cache.md`,
    `decoder_attention.png` and `decoder_by_length.png`."""
    s = settings(quick)
    base = {**BASE, "data": {"train": s["data"]}}
    shared = [f"train.epochs={s['epochs']}", f"train.seed={seed}", "train.patience=null"]
    sizes = {
        "transformer": [
            f"model.d_model={s['d_model']}",
            "model.num_heads=4",
            "model.num_layers=2",
            f"model.ff_dim={2 * s['d_model']}",
        ]
    }
    rnn = [f"model.hidden_dim={s['rnn']}", f"model.embed_dim={s['rnn']}"]
    trained = {entry: train_entry(base, entry, [*shared, *sizes.get(entry, rnn)]) for entry in ENTRIES}
    rows, curves = [], {}
    for entry, model in trained.items():
        scores = score_by_length(model, model.splits.test[: s["test"]])
        curves[entry] = scores
        total = sum(v["pairs"] for v in scores.values())
        buckets = [_bucket(scores, low, high) for low, high in BUCKETS]
        exact = sum(v["exact_match"] * v["pairs"] for v in scores.values()) / total
        attention = {"seq2seq": "none (fixed context)", "seq2seq-attn": "Bahdanau", "transformer": "multi-head cross-attention"}[
            entry
        ]
        rows.append(
            [entry, attention, model.parameters, round(model.seconds, 1), round(exact, 4), *(round(b, 4) for b in buckets)]
        )

    transformer = trained["transformer"]
    source = _example_source(transformer)
    steps = decode_steps(transformer, source)
    output.mkdir(parents=True, exist_ok=True)
    _write_table(
        output / "steps.md",
        [
            "step",
            "fed in",
            "chosen",
            "p(chosen)",
            "self-attn cache (positions)",
            "cross-attn looks at",
            "weight",
            "max abs. difference, cached vs recomputed",
        ],
        steps,
    )
    kv = cache_cost(s["gpt"], s["gpt_tokens"], seed)
    _write_table(
        output / "kv_cache.md", ["new tokens", "with KV cache (s)", "recomputing the prefix (s)", "speed-up", "same tokens"], kv
    )
    plots = [
        _plot_maps(transformer, source, output / "decoder_attention.png"),
        _plot_lengths(curves, output / "decoder_by_length.png"),
    ]
    columns = [
        "model",
        "attention",
        "parameters",
        "train s",
        "exact match",
        *(f"exact match, {lo}-{hi} letters" for lo, hi in BUCKETS),
    ]
    return ExperimentResult(
        NAME,
        columns,
        rows,
        verdict=verdict(rows, steps, kv, quick),
        plots=plots,
        settings={**s, "seed": seed, "example": source, "steps": steps, "kv_cache": kv},
    )


def _bucket(scores: dict[int, dict[str, float]], low: int, high: int) -> float:
    mine = [v for n, v in scores.items() if low <= n <= high]
    pairs = sum(v["pairs"] for v in mine)
    return sum(v["exact_match"] * v["pairs"] for v in mine) / pairs if pairs else float("nan")


def _example_source(trained: Trained) -> str:
    """A held-out source of 8 letters (or the longest there is)."""
    test = trained.splits.test
    return next((p.source for p in test if len(p.source.split()) == 8), max(test, key=lambda p: len(p.source)).source)


@torch.inference_mode()
def decode_steps(trained: Trained, source: str) -> list[list]:
    """Greedy decoding of `source` one `step` at a time, each step checked against a full
    teacher-forced pass over the prefix decoded so far (no cache)."""
    model, vocab = trained.model.eval(), trained.vocab
    ids = translate.encode_sources(vocab.source, [source], trained.cfg.tokenizer.max_length).ids[0]
    source_ids, source_mask = torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool)
    source_tokens = [_shown(vocab.source.id_to_token(i)) for i in ids]
    state = model.encode(source_ids, source_mask)
    fed, rows = [vocab.bos_id], []
    limit = translate.DecodeSettings.from_config(trained.cfg, beam=1).limit(len(ids)) + 1
    for step in range(1, limit + 1):
        logits, state, cross = model.step(torch.tensor([fed[-1]]), state, need_weights=True)  # (1, V), (1, S)
        recomputed = model(source_ids, source_mask, torch.tensor([fed])).logits[:, -1]  # the whole prefix again
        probs = logits.softmax(-1)[0]
        chosen = int(probs.argmax())
        look = int(cross[0].argmax())
        rows.append(
            [
                step,
                _shown(vocab.target.id_to_token(fed[-1])),
                _shown(vocab.target.id_to_token(chosen)),
                round(float(probs[chosen]), 4),
                int(state.past[0][0].size(2)),
                source_tokens[look],
                round(float(cross[0, look]), 3),
                f"{float((logits - recomputed).abs().max()):.1e}",
            ]
        )
        if chosen == vocab.eos_id:
            break
        fed.append(chosen)
    return rows


@torch.inference_mode()
def cache_cost(sizes: dict, lengths: list[int], seed: int, prompt: int = 16) -> list[list]:
    """Greedy generation of each number of new tokens with the KV cache (`decoding.generate`)
    and by recomputing the whole prefix at every step; seconds of each and whether they agree."""
    torch.manual_seed(seed)
    vocab = 512
    model = GPT(vocab, max_len=prompt + max(lengths) + 1, dropout=0.0, **sizes).eval()
    input_ids = torch.randint(0, vocab, (1, prompt))
    rows = []
    for new in lengths:
        started = time.perf_counter()
        cached = decoding.generate(model, input_ids, None, decoding.GenerationConfig(max_new_tokens=new))[0]
        with_cache = time.perf_counter() - started
        started = time.perf_counter()
        sequence = input_ids
        for _ in range(new):  # every step runs the model over all positions so far
            token = model(sequence).logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
            sequence = torch.cat([sequence, token], dim=1)
        without = time.perf_counter() - started
        rows.append(
            [
                new,
                round(with_cache, 3),
                round(without, 3),
                round(without / with_cache, 1),
                cached == sequence[0, prompt:].tolist(),
            ]
        )
    return rows


def verdict(rows: list[list], steps: list[list], kv: list[list], quick: bool) -> str:
    if quick:
        return QUICK_VERDICT
    drift = max(float(r[-1]) for r in steps)
    exact = {r[0]: r for r in rows}
    longest = kv[-1]
    same = "the same tokens" if all(r[4] for r in kv) else "DIFFERENT tokens"
    text = (
        f"the decoder writes one token per step, its cache growing by one position each time "
        f"(cached and recomputed logits differ by ≤ {drift:.0e}); the cache makes {longest[0]} new tokens "
        f"{longest[3]}× faster with {same}; on 10-12 letters seq2seq gets {100 * exact['seq2seq'][7]:.0f}%, "
        f"Bahdanau {100 * exact['seq2seq-attn'][7]:.0f}%, the Transformer {100 * exact['transformer'][7]:.0f}% exact"
    )
    if exact["transformer"][4] < exact["seq2seq-attn"][4] - 0.05:
        return (
            f"confirmed, but at this budget the Transformer encoder-decoder ({exact['transformer'][3]:.0f} s of "
            f"training) trails Bahdanau attention: " + text
        )
    return "confirmed: " + text


def _shown(token: str) -> str:
    """A token as a reader knows it: without the reversible vocabulary's word-start mark."""
    return token.lstrip("▁") or token


def _write_table(path: Path, columns: list[str], rows: list[list]) -> None:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@torch.inference_mode()
def attention_maps(trained: Trained, source: str) -> tuple[list[str], list[str], list[torch.Tensor], list[torch.Tensor]]:
    """The model's greedy output for `source`, read back teacher-forced: (source tokens, decoder
    input tokens, per-layer self-attention (H, T, T), per-layer cross-attention (H, T, S)).

    The decoder layers do not return their self-attention weights, so a pre-hook asks each
    layer's self-attention for them and a hook keeps them; the model itself is unchanged."""
    model, vocab = trained.model.eval(), trained.vocab
    ids = translate.encode_sources(vocab.source, [source], trained.cfg.tokenizer.max_length).ids[0]
    output = translate.translate_ids(model, [ids], vocab, translate.DecodeSettings.from_config(trained.cfg, beam=1))[0]
    targets_in = torch.tensor([[vocab.bos_id, *output]])
    kept: list[torch.Tensor] = []
    handles = []
    for layer in model.layers:
        handles.append(
            layer.self_attention.register_forward_pre_hook(
                lambda module, args, kwargs: (args, {**kwargs, "need_weights": True}), with_kwargs=True
            )
        )
        handles.append(layer.self_attention.register_forward_hook(lambda module, args, out: kept.append(out[1][0])))
    try:
        out = model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool), targets_in, need_weights=True)
    finally:
        for handle in handles:
            handle.remove()
    source_tokens = [_shown(vocab.source.id_to_token(i)) for i in ids]
    target_tokens = [_shown(vocab.target.id_to_token(i)) for i in targets_in[0].tolist()]
    return source_tokens, target_tokens, kept, [w[0] for w in out.cross_attentions]


def _plot_maps(trained: Trained, source: str, path: Path) -> Path:
    """Rows: decoder layers; columns: each head's causal self-attention, then its cross-attention."""
    from seqlab.plots import _save, plt

    source_tokens, target_tokens, selfs, crosses = attention_maps(trained, source)
    heads = selfs[0].size(0)
    fig, axes = plt.subplots(len(selfs), 2 * heads, figsize=(2.3 * 2 * heads, 2.5 * len(selfs) + 0.8), squeeze=False)
    for layer, (self_w, cross_w) in enumerate(zip(selfs, crosses)):
        for head in range(heads):
            for column, weights, keys, kind in (
                (head, self_w, target_tokens, "self"),
                (heads + head, cross_w, source_tokens, "cross"),
            ):
                ax = axes[layer][column]
                ax.imshow(weights[head], cmap="viridis", vmin=0.0, vmax=1.0)
                ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=6)
                ax.set_yticks(range(len(target_tokens)), target_tokens if column == 0 else [], fontsize=6)
                ax.set_title(f"L{layer} H{head} {kind}", fontsize=8)
    fig.suptitle(f"decoder self-attention (left) and cross-attention over the source (right): {source!r}", fontsize=10)
    return _save(fig, path)


def _plot_lengths(curves: dict[str, dict[int, dict[str, float]]], path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for entry, scores in curves.items():
        ax.plot(list(scores), [100 * v["exact_match"] for v in scores.values()], marker="o", label=entry)
    ax.set_xlabel("source length (letters)")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Reversing letters: encoder-decoders by source length")
    return _save(fig, path)
