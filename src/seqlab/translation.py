"""The translation pipelines behind `api.train` (task `translate`), `api.load_translator` and
`api.compare_translation`: the life cycle of a `translate` run folder, and a loaded model that
translates in batches and shows its alignments.

```
runs/<name>/
  config.yaml             task: translate, the resolved config
  tokenizer.json          the source vocabulary
  target_tokenizer.json   the target vocabulary (a copy of tokenizer.json when shared)
  model.safetensors       the weights
  metrics.json            best val_acc, epochs; valid (greedy) and test (beam) BLEU, chrF, exact
                          match, teacher-forced/free-running accuracy, attention entropy, by length
  manifest.json           seed, versions, per-split pairs and sha256, parameters, timings
  checkpoints/ logs/      as for every run (--resume, learning curves)
```

As for every run, the data is checked before the folder exists, a crash before the first
checkpoint removes the folder, and `model.safetensors` marks a finished run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from seqlab import plots, runs
from seqlab.alignment_page import write_alignment_page
from seqlab.config import RunConfig
from seqlab.data.parallel import Pair
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.tasks import translate, translate_eval

log = logging.getLogger("seqlab")

TARGET_TOKENIZER = "target_tokenizer.json"


class TranslatorPipeline:
    """A trained encoder-decoder and its vocabularies: sentences in, translations out.

    Attributes:
        unknown, truncated: [UNK] source tokens and sources cut to `tokenizer.max_length` in the
            last call of `translate`.
    """

    def __init__(self, model: nn.Module, vocab: translate.Vocabularies, config: RunConfig, name: str):
        self.model = model.eval()
        self.vocab = vocab
        self.config = config
        self.name = name
        self.unknown = self.truncated = 0

    def check_texts(self, texts: str | Sequence[str]) -> list[str]:
        """One clear error for input a model cannot take: not text, empty, or absurdly long."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise SeqlabError("nothing to translate: give at least one sentence")
        limit = self.config.data.max_chars
        for number, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise SeqlabError(f"input {number} is {type(text).__name__}, not text")
            if not text.strip():
                raise SeqlabError(f"input {number} is empty; give a sentence to translate")
            if len(text) > limit:
                raise SeqlabError(f"input {number} is {len(text):,} characters, over the limit of {limit:,} (data.max_chars)")
        return [text.strip() for text in texts]

    def settings(self, beam: int | None = None, length_penalty: float | None = None,
                 max_length_ratio: float | None = None) -> translate.DecodeSettings:
        """The run's decoding defaults (`translate` section) with these changes."""
        return translate.DecodeSettings.from_config(self.config, beam=beam, length_penalty=length_penalty, max_length_ratio=max_length_ratio)

    def encode(self, texts: Sequence[str]) -> translate.EncodedSources:
        """Source ids; unknown tokens are counted and over-long sources truncated, each with a message."""
        max_length = self.config.tokenizer.max_length
        encoded = translate.encode_sources(self.vocab.source, texts, max_length)
        self.unknown, self.truncated = encoded.unknown, encoded.truncated
        if encoded.truncated:
            log.warning("%d input(s) longer than %d tokens were cut to fit the model (tokenizer.max_length)", encoded.truncated, max_length)
        if encoded.unknown:
            log.warning("%d source token(s) are not in the vocabulary and were read as [UNK]", encoded.unknown)
        return encoded

    def translate(self, texts: str | Sequence[str], beam: int | None = None, length_penalty: float | None = None,
                  max_length_ratio: float | None = None, return_attention: bool = False, batch_size: int = 64) -> list:
        """Translate every text (greedy with beam=1, else beam search; default: `translate.beam`).

        Returns:
            One translation per text; with `return_attention`, one dict per text: "source",
            "translation", "source_tokens", "target_tokens" (the output tokens and [EOS]) and
            "attention", a (target × source) list of lists of weights (None for a model without
            attention).
        """
        texts = self.check_texts(texts)
        settings = self.settings(beam, length_penalty, max_length_ratio)
        sources = self.encode(texts).ids
        with torch.inference_mode():
            outputs = translate.translate_ids(self.model, sources, self.vocab, settings, batch_size)
        translations = [translate.decode_target(self.vocab.target, ids) for ids in outputs]
        if not return_attention:
            return translations
        weights = translate.alignments(self.model, sources, outputs, self.vocab, batch_size)
        return [
            {"source": text, "translation": out,
             "source_tokens": [self.vocab.source.id_to_token(i) for i in src],
             "target_tokens": [self.vocab.target.id_to_token(i) for i in ids] + [translate.EOS],
             "attention": None if w is None else w.tolist()}
            for text, out, src, ids, w in zip(texts, translations, sources, outputs, weights)
        ]

    __call__ = translate

    def save_attention(self, texts: str | Sequence[str], path: str | Path, **settings) -> Path:
        """Draw the alignments of `texts`: a PNG heat map (the first text) or, for a `.html`
        path, one self-contained page with every text."""
        path = Path(path)
        if path.suffix.lower() not in (".png", ".html", ".htm"):
            raise SeqlabError(f"--attention writes .png or .html, not {path.suffix or path.name!r}")
        if self.config.model.arch == "seq2seq":
            raise SeqlabError("a plain seq2seq model has no attention to draw; use seq2seq-attn or transformer-seq2seq")
        items = self.translate(texts, return_attention=True, **settings)
        title = f"{self.name} ({self.config.model.arch})"
        if path.suffix.lower() in (".html", ".htm"):
            return write_alignment_page(path, items, title)
        first = items[0]
        return plots.alignment_heatmap(first["attention"], first["target_tokens"], first["source_tokens"], path,
                                       f"{first['source']}\n→ {first['translation']}")

    def evaluate(self, pairs: Sequence[Pair], beam: int | None = None, batch_size: int = 64) -> dict:
        """BLEU, chrF, exact match, teacher-forced and free-running accuracy, attention entropy
        and exact match by source length (see `tasks.translate_eval`)."""
        if not pairs:
            raise SeqlabError("no pairs to evaluate")
        return translate_eval.evaluate(self.model, self.vocab, pairs, self.settings(beam), self.config.tokenizer.max_length, batch_size)


def load_translator(path: str | Path) -> TranslatorPipeline:
    """Open a finished `translate` run folder; its translations equal those made right after training."""
    run_dir = Path(path)
    cfg = runs.finished_config(run_dir, "translate", "translation")
    vocab = _read_vocabularies(run_dir)
    model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    runs.load_weights(model, run_dir / runs.WEIGHTS)
    return TranslatorPipeline(model, vocab, cfg, str(run_dir))


def _read_vocabularies(run_dir: Path) -> translate.Vocabularies:
    return translate.Vocabularies(load_tokenizer(run_dir / runs.TOKENIZER), load_tokenizer(run_dir / TARGET_TOKENIZER)).check()


# --------------------------------------------------------------------------- training


def train_translator(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Train an encoder-decoder into a new run folder, or continue an unfinished one.

    Returns:
        The run folder.
    """
    started = time.perf_counter()
    if resume is not None:
        run_dir = Path(resume)
        cfg = runs.resumable_config(run_dir, "translate")
    splits = translate.load_splits(cfg)
    vocab = _read_vocabularies(run_dir) if resume is not None else translate.learn_vocabularies(cfg, splits.train)
    if resume is None:
        run_dir = runs.start_run(cfg)
    prepared = time.perf_counter()
    log.info("run folder %s: %s train / %s valid / %s test pairs; vocabularies %d source / %d target", run_dir,
             *(f"{len(getattr(splits, n)):,}" for n in ("train", "valid", "test")),
             vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    with runs.guard_new_run(run_dir, fresh=resume is None):
        if resume is None:  # saved first: --resume needs the same ids
            vocab.source.save(str(run_dir / runs.TOKENIZER))
            vocab.target.save(str(run_dir / TARGET_TOKENIZER))
        torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
        model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
        fitted = translate.fit_translator(cfg, model, vocab, splits.train, splits.valid, run_dir, resume=resume is not None, progress=progress)
        runs.raise_if_interrupted(fitted.result.interrupted, run_dir, "seqlab train")
        _write_finished_run(run_dir, cfg, splits, vocab, fitted, started, prepared)
        runs.finish_run(run_dir)  # last: complete.json marks the folder finished
    return run_dir


def _write_finished_run(run_dir: Path, cfg: RunConfig, splits: translate.Splits, vocab: translate.Vocabularies,
                        fitted: translate.Fitted, started: float, prepared: float) -> None:
    metrics = {"best_" + cfg.train.monitor: fitted.result.best_score, "epochs": fitted.result.epochs}
    pipe = TranslatorPipeline(fitted.model, vocab, cfg, str(run_dir))
    if splits.valid:
        metrics["valid"] = pipe.evaluate(splits.valid, beam=1)
    if splits.test:
        metrics["test"] = pipe.evaluate(splits.test)
    runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
    runs.write_json(run_dir / runs.METRICS, metrics)
    data = {
        name: {"source": splits.sources[name], "pairs": len(getattr(splits, name)),
               "sha256": runs.data_hash((p.source, p.target) for p in getattr(splits, name))}
        for name in ("train", "valid", "test")
    }
    runs.write_json(run_dir / runs.MANIFEST, runs.manifest(
        cfg, data, translate.count_parameters(fitted.model), started, prepared, fitted.result.seconds,
    ))


# --------------------------------------------------------------------------- comparison


def compare(base: dict, entries: Sequence[str], overrides: Sequence[str] = (), output_dir: str | Path | None = None,
            seeds: int = 1) -> tuple[list[dict], Path]:
    """Train every entry (see `tasks.translate_compare`) on the same pairs and write
    results.json, table.md and comparison.png into `output_dir`; each finished run is appended
    to partial.jsonl as it comes.

    Returns:
        (one row per run, the output folder).
    """
    import json

    from seqlab.tasks import translate_compare

    entries = translate_compare.parse_entries(",".join(entries))
    output = Path(output_dir or Path("runs") / f"compare-translate-{time.strftime('%Y%m%d-%H%M%S')}")
    output.mkdir(parents=True, exist_ok=True)

    def save_partial(row: dict) -> None:
        with open(output / "partial.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    rows = translate_compare.compare(base, entries, list(overrides), seeds, save_partial)
    runs.write_json(output / "results.json", {"base": base, "entries": entries, "overrides": list(overrides), "seeds": seeds,
                                              "versions": runs.environment(), "runs": rows})
    (output / "table.md").write_text(translate_compare.markdown_tables(rows) + "\n", encoding="utf-8")
    data = base.get("data", {}).get("train", "numbers-en-fr")
    plots.translation_comparison(rows, output / "comparison.png", f"{data} · test split · beam {rows[0]['beam']}")
    return rows, output
