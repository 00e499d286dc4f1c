"""The pretraining pipelines behind `api.pretrain` and `api.fill_mask`: the life cycle of a
`pretrain-mlm` run folder, and a loaded masked-LM.

```
runs/<name>/
  config.yaml        task: pretrain-mlm, the resolved config (model sizes, pretrain section)
  tokenizer.json     the WordPiece vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK] = ids 0-4)
  model.safetensors  encoder.*, mlm_transform.*, mlm_bias, pooler.*, nsp_head.*
  metrics.json       best val_loss, epochs, valid/test: MLM accuracy, loss, perplexity, NSP accuracy
  manifest.json      seed, versions, per-split documents/sentences/examples/tokens and sha256
  checkpoints/ logs/ as for every run (--resume, learning curves)
```

As for classifiers, every check on the data happens before the folder exists, a crash before
the first checkpoint removes the folder, and `model.safetensors` marks a finished run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tokenizers import Tokenizer

from seqlab import runs
from seqlab.config import RunConfig
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models.bert import BertForPretraining
from seqlab.tasks import finetune
from seqlab.tasks import pretrain as mlm

log = logging.getLogger("seqlab")


class MaskedLMPipeline:
    """A pretrained BERT-style encoder: fill in [MASK]s."""

    def __init__(self, files: finetune.PretrainedRun, model: BertForPretraining):
        self.path = files.path
        self.config = files.config
        self.tokenizer = files.tokenizer
        self.model = model.eval()

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[dict]]:
        """For every [MASK] in `text`, the `top_k` likeliest wordpieces: [[{"token", "probability"}, ...], ...]."""
        if not isinstance(text, str) or not text.strip():
            raise SeqlabError("give a text with [MASK] where a word is to be predicted, e.g. 'to be or not to [MASK]'")
        if top_k < 1:
            raise SeqlabError(f"top_k must be at least 1, got {top_k}")
        if len(text) > self.config.data.max_chars:
            raise SeqlabError(f"the text is {len(text):,} characters, over the limit of {self.config.data.max_chars:,} (data.max_chars)")
        return mlm.fill_mask(self.model, self.tokenizer, text, top_k, self.config.tokenizer.max_length)


def load_masked_lm(path: str | Path) -> MaskedLMPipeline:
    """Open a finished pretrain-mlm run folder."""
    files = finetune.open_pretrained(path)
    model = mlm.build_model(files.config, files.tokenizer.get_vocab_size())
    runs.load_weights(model, files.path / runs.WEIGHTS)
    return MaskedLMPipeline(files, model)


def pretrain(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Pretrain a BERT-style encoder into a new run folder (or continue an unfinished one).

    Returns:
        The run folder.
    """
    started = time.perf_counter()
    if resume is not None:
        run_dir, cfg, tokenizer = _resumable(Path(resume))
    elif cfg.task != "pretrain-mlm":
        raise SeqlabError(f"pretrain needs a config with task: pretrain-mlm, got {cfg.task}")
    splits = mlm.load_splits(cfg)
    if resume is None:
        tokenizer = mlm.learn_wordpiece(cfg, splits.train)
    data = mlm.make_examples(cfg, splits, tokenizer)
    if resume is None:
        run_dir = runs.start_run(cfg)
    prepared = time.perf_counter()
    counts = data.counts
    log.info("run folder %s: %d train / %d valid / %d test examples (%s training tokens)", run_dir,
             counts["train"]["examples"], counts["valid"]["examples"], counts["test"]["examples"], f"{counts['train']['tokens']:,}")
    with runs.guard_new_run(run_dir, fresh=resume is None):
        if resume is None:
            tokenizer.save(str(run_dir / runs.TOKENIZER))  # saved first: --resume needs the same ids
        fitted = mlm.fit_masked_lm(cfg, data, tokenizer.get_vocab_size(), run_dir, resume=resume is not None, progress=progress)
        runs.raise_if_interrupted(fitted.result.interrupted, run_dir, "seqlab pretrain mlm")
        _write_finished_run(run_dir, cfg, splits, data, fitted, started, prepared)
        runs.finish_run(run_dir)  # last: complete.json marks the folder finished
    return run_dir


def _resumable(run_dir: Path) -> tuple[Path, RunConfig, Tokenizer]:
    cfg = runs.resumable_config(run_dir, "pretrain-mlm")
    return run_dir, cfg, load_tokenizer(run_dir / runs.TOKENIZER)


def _write_finished_run(run_dir: Path, cfg: RunConfig, splits: mlm.CorpusSplits, data: mlm.PretrainData,
                        fitted: mlm.FittedMLM, started: float, prepared: float) -> None:
    nsp = cfg.pretrain.nsp
    metrics = {"best_" + cfg.train.monitor: fitted.result.best_score, "epochs": fitted.result.epochs}
    for name in ("valid", "test"):
        if data.examples[name]:
            metrics[name] = mlm.evaluate(fitted.model, data.examples[name], nsp)
    runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
    runs.write_json(run_dir / runs.METRICS, metrics)
    seen = {
        name: {"source": splits.sources[name], **data.counts[name],
               "sha256": runs.data_hash((sentence, str(d)) for d, doc in enumerate(getattr(splits, name)) for sentence in doc)}
        for name in ("train", "valid", "test")
    }
    parameters = sum(p.numel() for p in fitted.model.parameters())
    runs.write_json(run_dir / runs.MANIFEST, runs.manifest(cfg, seen, parameters, started, prepared, fitted.result.seconds))
