"""The translation pipelines behind `api.train` (task `translate`), `api.load_translator` and
`api.compare_translation`: the life cycle of a `translate` run folder, and a loaded model that
translates in batches and shows its alignments.

```
runs/<name>/
  config.yaml             task: translate, the resolved config
  tokenizer.json          the source vocabulary
  target_tokenizer.json   the target vocabulary (a copy of tokenizer.json when shared)
  model.safetensors       the weights
  metrics.json            best val_bleu, epochs; valid (greedy) and test (beam) multi-reference
                          BLEU and chrF with sacreBLEU's signatures, exact match,
                          teacher-forced/free-running accuracy, attention entropy, by source length
  manifest.json           seed, versions, per-split pairs and sha256, parameters, timings
  checkpoints/ logs/      as for every run (--resume, learning curves)
```

As for every run, the data is checked before the folder exists, a crash before the first
checkpoint removes the folder, and `model.safetensors` marks a finished run. Loading a run
imports no training code (Lightning): only `inference` and `metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlab import plots, runs
from seqlab.config import RunConfig
from seqlab.data.parallel import MultiRef, Pair
from seqlab.data.texts import check_texts
from seqlab.errors import SeqlabError
from seqlab.tasks.translate import inference as translate
from seqlab.tasks.translate import metrics as translate_eval
from seqlab.tasks.translate.alignment_page import write_alignment_page

log = logging.getLogger("seqlab")


class TranslatorPipeline:
    """A trained encoder-decoder and its vocabularies: sentences in, translations out.

    Attributes:
        unknown, truncated: [UNK] source tokens and sources cut to `tokenizer.max_length` in the
            last call of `translate`.
    """

    task = "translate"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`translate`: every pipeline is callable."""
        return self.translate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """`translate`, under the name every pipeline shares."""
        return self.translate(*args, **kwargs)

    def __repr__(self) -> str:
        return f"TranslatorPipeline(task=translate, run={self.name!r}, arch={self.config.model.arch}, beam={self.config.translate.beam})"

    def __init__(self, model: nn.Module, vocab: translate.Vocabularies, config: RunConfig, name: str):
        self.model = model.eval()
        self.vocab = vocab
        self.config = config
        self.name = name
        self.unknown = self.truncated = 0

    def check_texts(self, texts: str | Sequence[str]) -> list[str]:
        """`texts` as a list, stripped; one clear error for input the model cannot take."""
        return [text.strip() for text in check_texts(texts, "translate", max_chars=self.config.data.max_chars)]

    def settings(
        self, beam: int | None = None, length_penalty: float | None = None, max_length_ratio: float | None = None
    ) -> translate.DecodeSettings:
        """The run's decoding defaults (`translate` section) with these changes."""
        return translate.DecodeSettings.from_config(
            self.config, beam=beam, length_penalty=length_penalty, max_length_ratio=max_length_ratio
        )

    def encode(self, texts: Sequence[str]) -> translate.EncodedSources:
        """Source ids; unknown tokens are counted and over-long sources truncated, each with a message."""
        max_length = self.config.tokenizer.max_length
        encoded = translate.encode_sources(self.vocab.source, texts, max_length)
        self.unknown, self.truncated = encoded.unknown, encoded.truncated
        if encoded.truncated:
            log.warning(
                "%d input(s) longer than %d tokens were cut to fit the model (tokenizer.max_length)",
                encoded.truncated,
                max_length,
            )
        if encoded.unknown:
            log.warning("%d source token(s) are not in the vocabulary and were read as [UNK]", encoded.unknown)
        return encoded

    def translate(
        self,
        texts: str | Sequence[str],
        beam: int | None = None,
        length_penalty: float | None = None,
        max_length_ratio: float | None = None,
        return_attention: bool = False,
        batch_size: int = 64,
        n_best: int = 1,
    ) -> list:
        """Translate every text (greedy with beam=1, else beam search; default: `translate.beam`).

        Returns:
            One detokenised translation per text. With `n_best` > 1, one list per text of up to
            `n_best` {"translation", "score"} dicts, best first (score: sum of log p divided by
            length ** length_penalty). With `return_attention`, one dict per text: "source",
            "translation", "source_tokens", "target_tokens" (the output tokens and [EOS]) and
            "attention", a (target × source) list of lists of weights (None for a model without
            attention).
        """
        texts = self.check_texts(texts)
        settings = self.settings(beam, length_penalty, max_length_ratio)
        if n_best > 1 and return_attention:
            raise SeqlabError("n_best and return_attention do not go together: draw the alignments of the best translation")
        sources = self.encode(texts).ids
        with torch.inference_mode():
            found = translate.translate_nbest(self.model, sources, self.vocab, settings, batch_size, n_best)
        if n_best > 1:
            return [
                [{"translation": translate.decode_target(self.vocab.target, ids), "score": score} for score, ids in hypotheses]
                for hypotheses in found
            ]
        outputs = [hypotheses[0][1] for hypotheses in found]
        translations = [translate.decode_target(self.vocab.target, ids) for ids in outputs]
        if not return_attention:
            return translations
        weights = translate.alignments(self.model, sources, outputs, self.vocab, batch_size)
        return [
            {
                "source": text,
                "translation": out,
                "source_tokens": [self.vocab.source.id_to_token(i) for i in src],
                "target_tokens": [self.vocab.target.id_to_token(i) for i in ids] + [translate.EOS],
                "attention": None if w is None else w.tolist(),
            }
            for text, out, src, ids, w in zip(texts, translations, sources, outputs, weights)
        ]

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
        return plots.alignment_heatmap(
            first["attention"],
            first["target_tokens"],
            first["source_tokens"],
            path,
            f"{first['source']}\n→ {first['translation']}",
        )

    def evaluate(self, refs: Sequence[MultiRef | Pair], beam: int | None = None, batch_size: int = 64) -> dict:
        """Multi-reference BLEU and chrF (with sacreBLEU's signatures), exact match,
        teacher-forced and free-running accuracy, attention entropy and BLEU by source length
        (see `metrics`) of held-out sources (a `Pair` is a source with one reference)."""
        if not refs:
            raise SeqlabError("no pairs to evaluate")
        return translate_eval.evaluate(
            self.model, self.vocab, refs, self.settings(beam), self.config.tokenizer.max_length, batch_size
        )


def load_translator(path: str | Path) -> TranslatorPipeline:
    """Open a finished `translate` run folder; its translations equal those made right after training."""
    run_dir = Path(path)
    cfg = runs.finished_config(run_dir, "translate", "translation")
    vocab = translate.read_vocabularies(run_dir)
    model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    runs.load_weights(model, run_dir / runs.WEIGHTS)
    return TranslatorPipeline(model, vocab, cfg, str(run_dir))


load = load_translator  # (the registry's name for a task's loader)


def evaluation_pairs(pipe: TranslatorPipeline, data: str, direction: str | None = None) -> tuple[list[MultiRef], str]:
    """The held-out sources to score a run on, and what they are:

    - the data the run trained on (a generated task, or Tatoeba in the same direction): the
      run's own test split, rebuilt with its split seed and sizes;
    - another Tatoeba dataset or direction: that dataset's standard test split (split seed 0,
      2,000 sources; `direction` or the name's own);
    - the file the run trained on: its own held-out test sources (unless it had a test file);
    - another TSV or Moses file: every pair, grouped by source (several translations of one
      source are its references).
    """
    from seqlab.data import parallel, tatoeba

    d = pipe.config.data
    if parallel.parse_generated(data):
        test = parallel.generate_splits(data, d.split_seed, d.valid_fraction, d.test_fraction, train_limit=0)["test"]
        return translate.as_references(test), f"{data}: the test split (split_seed {d.split_seed})"
    if tatoeba.is_tatoeba(data):
        dataset, wanted = tatoeba.resolve(data, direction)
        if tatoeba.is_tatoeba(d.train) and tatoeba.resolve(d.train, d.direction) == (dataset, wanted):
            test = translate.tatoeba_splits(d).test
            return test, f"{dataset.name} ({wanted}): the run's own held-out test sources (split_seed {d.split_seed})"
        standard = pipe.config.data.model_copy(
            update={"train": dataset.name, "direction": wanted, "split_seed": 0, "valid_sources": None, "test_sources": None}
        )
        return translate.tatoeba_splits(standard).test, f"{dataset.name} ({wanted}): the standard test split (split_seed 0)"
    if direction is not None:
        raise SeqlabError("--direction applies to built-in Tatoeba data; in a file of pairs the first column is the source")
    if _same_file(data, d.test):
        pass  # the run's own test file: every pair of it, as below
    elif _same_file(data, d.train) and not d.test:
        return translate.file_splits(d)[0].test, f"{data}: the run's own held-out test sources (split_seed {d.split_seed})"
    text = parallel.read_parallel(data, max_chars=d.max_chars)
    if text.truncated:
        log.warning("%d line(s) of %s longer than %d characters were cut to it", text.truncated, data, d.max_chars)
    return parallel.group_by_source(text.pairs), f"{data}: every pair, grouped by source"


def _same_file(a: str, b: str | None) -> bool:
    return b is not None and "," not in a and Path(a).is_file() and Path(b).is_file() and Path(a).resolve() == Path(b).resolve()


def evaluate(pipe: TranslatorPipeline, data: str, beam: int | None = None, direction: str | None = None) -> dict:
    """Multi-reference BLEU and chrF with signatures, exact match, token accuracies and BLEU by
    source length (`TranslatorPipeline.evaluate`) on `evaluation_pairs(data)`."""
    refs, what = evaluation_pairs(pipe, data, direction)
    return {"data": data, "scored": what, **pipe.evaluate(refs, beam=beam)}


def report_attention(run_dir: Path, config: RunConfig, metrics: dict, pipe: TranslatorPipeline | None = None) -> list[dict]:
    """The run report's alignments (`seqlab.report` draws them): target × source attention of
    the first two held-out samples, as the run translates them; a plain seq2seq has none."""
    if config.model.arch == "seq2seq":
        return []
    split = next((s for s in ("test", "valid") if isinstance(metrics.get(s), dict) and metrics[s].get("samples")), None)
    sources = [s["source"] for s in metrics[split]["samples"]][:2] if split else []
    if not sources:
        return []
    items = (pipe or load_translator(run_dir)).translate(sources, return_attention=True)
    return [
        {
            "kind": "alignment",
            "title": f"{item['source']}\n→ {item['translation']}",
            "weights": item["attention"],
            "rows": item["target_tokens"],
            "columns": item["source_tokens"],
            "caption": "rows: output tokens; columns: source tokens (the run's beam search)",
        }
        for item in items
        if item["attention"] is not None
    ]
