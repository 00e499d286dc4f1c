"""Fine-tuning an encoder pretrained here (`model.init`, `seqlab train classify --init RUN`).

A `pretrain` run (see `seqlab.tasks.pretrain.recipe`) holds a `BertForPretraining`, whose encoder is
the `TransformerEncoder` that `TransformerClassifier` builds. So fine-tuning is: take the
pretrained run's sizes and WordPiece vocabulary into the classify config (`init_config`, which
`api.train` saves, so the finished run reloads without the pretrained one), build the classifier
(`num_segments=2`, and `prepend_cls=False`: the vocabulary puts its own [CLS] first), and copy the
`encoder.*` weights into it (`load_encoder`). `tasks.classify` calls these three, except on --resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn

from seqlab import runs
from seqlab.config import RunConfig, TransformerModelConfig, load_config
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.tasks.pretrain.inference import check_vocabulary


@dataclass
class PretrainedRun:
    """A finished pretrain run folder."""

    path: Path
    config: RunConfig
    tokenizer: Tokenizer


def open_pretrained(path: str | Path) -> PretrainedRun:
    """Open a finished pretrain run, naming what is wrong with anything else."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise SeqlabError(f"pretrained run {run_dir} does not exist; make one with `seqlab pretrain mlm --data ...`")
    if not (run_dir / runs.CONFIG).is_file():
        raise SeqlabError(f"{run_dir} is not a seqlab run folder (no {runs.CONFIG})")
    config = load_config(run_dir / runs.CONFIG)
    if config.task != "pretrain":
        raise SeqlabError(
            f"{run_dir} is a {config.task} run of a {config.model.arch} model, not a pretrained encoder; "
            "give a run made by `seqlab pretrain mlm`"
        )
    if not (run_dir / runs.WEIGHTS).is_file():
        raise SeqlabError(
            f"pretrained run {run_dir} has no {runs.WEIGHTS}: it did not finish; continue it with "
            f"`seqlab pretrain mlm --resume {run_dir}`"
        )
    runs.check_finished(run_dir)
    tokenizer = load_tokenizer(run_dir / runs.TOKENIZER)
    check_vocabulary(tokenizer, run_dir / runs.TOKENIZER)
    return PretrainedRun(run_dir, config, tokenizer)


ENCODER_KEYS = ("d_model", "num_heads", "num_layers", "ff_dim", "positional", "num_segments")


def init_config(cfg: RunConfig) -> RunConfig:
    """The classify config with the encoder sizes and the tokenizer section of the pretrained
    run `model.init`, so the finished run records them and reloads without that run."""
    model_cfg = cast(TransformerModelConfig, cfg.model)  # only a transformer has model.init
    pretrained = open_pretrained(cast(str, model_cfg.init))  # called when model.init is set
    if model_cfg.embeddings:
        raise SeqlabError("model.init and model.embeddings both set the word vectors of the encoder; use one of them")
    raw = cfg.model_dump()
    raw["model"].update({key: getattr(pretrained.config.model, key) for key in ENCODER_KEYS})
    raw["tokenizer"] = pretrained.config.tokenizer.model_dump()
    return RunConfig.model_validate(raw)


def load_encoder(model: nn.Module, init: str | Path) -> None:
    """Copy the pretrained run's `encoder.*` weights into a classifier built with its sizes.

    Raises:
        SeqlabError: the classifier's encoder does not have the pretrained one's parameters.
    """
    path = open_pretrained(init).path / runs.WEIGHTS
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise SeqlabError(f"{path} is not a readable safetensors file ({err})") from None
    own = {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    wrong = [k for k, v in own.items() if k not in state or state[k].shape != v.shape]
    if wrong:
        raise SeqlabError(
            f"the classifier's encoder does not fit {path} ({wrong[0]} differs); model.init takes the sizes "
            f"from the pretrained run: set none of model.{', model.'.join(ENCODER_KEYS)}"
        )
    model.load_state_dict({k: state[k] for k in own}, strict=False)
