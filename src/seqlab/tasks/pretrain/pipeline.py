"""The pretraining pipelines behind `api.pretrain` and `api.fill_mask`: the life cycle of a
`pretrain` run folder, and a loaded masked-LM.

```
runs/<name>/
  config.yaml        task: pretrain, the resolved config (model sizes, pretrain section)
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
from pathlib import Path
from typing import Any

from seqlab import runs
from seqlab.errors import SeqlabError
from seqlab.models.bert import BertForPretraining
from seqlab.tasks.pretrain import finetune
from seqlab.tasks.pretrain import inference as mlm

log = logging.getLogger("seqlab")


class MaskedLMPipeline:
    """A pretrained BERT-style encoder: fill in [MASK]s."""

    task = "pretrain"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`fill_mask`: every pipeline is callable."""
        return self.fill_mask(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """`fill_mask`, under the name every pipeline shares."""
        return self.fill_mask(*args, **kwargs)

    def __repr__(self) -> str:
        return f"MaskedLMPipeline(task=pretrain, run={str(self.path)!r}, vocabulary={self.tokenizer.get_vocab_size()})"

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
            raise SeqlabError(
                f"the text is {len(text):,} characters, over the limit of {self.config.data.max_chars:,} (data.max_chars)"
            )
        return mlm.fill_mask(self.model, self.tokenizer, text, top_k, self.config.tokenizer.max_length)


def load_masked_lm(path: str | Path) -> MaskedLMPipeline:
    """Open a finished pretrain run folder."""
    files = finetune.open_pretrained(path)
    model = mlm.build_model(files.config, files.tokenizer.get_vocab_size())
    runs.load_weights(model, files.path / runs.WEIGHTS)
    return MaskedLMPipeline(files, model)


load = load_masked_lm  # (the registry's name for a task's loader)


def evaluate(pipe: MaskedLMPipeline, data: str) -> dict:
    """A pretrain run is scored when it finishes (masked-LM loss and accuracy in metrics.json)."""
    raise SeqlabError(
        f"a pretrain run has no evaluate; its masked-LM scores are in {pipe.path}/metrics.json, and "
        f"`seqlab train classify --arch transformer --init {pipe.path}` fine-tunes it on a task"
    )
