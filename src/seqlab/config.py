"""Typed run configuration: validated when built, saved beside the weights, overridable as a.b=value.

A run is fully described by one `RunConfig`; `config.yaml` in a run folder is its resolved form
(every preset value written out), so `seqlab train runs/x/config.yaml` reproduces the run.
An unknown key or a wrong type is a `SeqlabError` naming the key.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from seqlab.errors import SeqlabError
from seqlab.models.presets import PRESETS, family_of
from seqlab.registry import canonical


class StrictModel(BaseModel):
    """Unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Where examples come from and how they are split."""

    train: str = Field("rt-polarity", description="built-in dataset name or a .csv/.tsv/.jsonl file")
    valid: str | None = Field(None, description="validation file; default: a slice of train")
    test: str | None = Field(None, description="test file; default: a slice of train")
    text_column: str | None = None
    label_column: str | None = None
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = Field(0, description="seed of the train/valid/test split (fixed across runs)")
    max_chars: int = Field(100_000, gt=0, description="longest text accepted, in characters")
    limit: int | None = Field(None, gt=0, description="use only this many training examples")
    direction: str | None = Field(
        None, description="translate, built-in Tatoeba data: en-fr or fr-en (en-es or es-en); default: the dataset name's own"
    )
    valid_sources: int | None = Field(
        None,
        ge=0,
        description="translate: distinct source sentences held out for validation with all their translations "
        "(default: Tatoeba 1,000; files: valid_fraction of them)",
    )
    test_sources: int | None = Field(
        None,
        ge=0,
        description="translate: distinct source sentences held out for the test (default: Tatoeba 2,000; "
        "files: test_fraction of them)",
    )

    @field_validator("direction")
    @classmethod
    def _direction_is_a_pair(cls, direction: str | None) -> str | None:
        # (which directions a dataset has is the translate task's check: the config layer reads no data)
        if direction is not None and not re.fullmatch(r"[a-z]{2,3}-[a-z]{2,3}", direction):
            raise PydanticCustomError("direction", f"data.direction is written source-target, e.g. en-fr, not {direction!r}")
        return direction


class TokenizerConfig(StrictModel):
    """A vocabulary trained on the training split with Hugging Face `tokenizers`."""

    level: Literal["word", "char", "bpe", "wordpiece"] = "word"
    vocab_size: int = Field(30_000, gt=2)
    min_frequency: int = Field(1, ge=1)
    lowercase: bool = True
    max_length: int = Field(256, gt=0, description="tokens kept per text; longer ones are truncated")


class _ModelBase(StrictModel):
    preset: Literal["tiny", "small", "base"] = "small"
    head: Literal["softmax", "sigmoid"] = Field("softmax", description="sigmoid: one output, binary tasks only")
    dropout: float = Field(ge=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, values: Any) -> Any:
        """Fill every size the user did not set from the named preset, so the saved config is explicit."""
        if not isinstance(values, dict) or "arch" not in values:
            return values
        preset = values.get("preset", "small")
        defaults = PRESETS.get(family_of(values["arch"]), {}).get(preset, {})
        return {**defaults, **_vector_size(values), **values}


# Named pretrained word vectors (seqlab.data.vectors) and their size: `model.embeddings=spacy-md`
# sets embed_dim / d_model to 300 unless the user set it.
VECTOR_SIZES = {"spacy-md": 300, "glove-6b-50d": 50}


def _vector_size(values: dict[str, Any]) -> dict[str, int]:
    spec = values.get("embeddings")
    size = VECTOR_SIZES.get(spec) if isinstance(spec, str) else None
    key = {"rnn": "embed_dim", "cnn": "embed_dim", "transformer": "d_model"}.get(family_of(values["arch"]))
    return {key: size} if size and key else {}


class _WordModelBase(_ModelBase):
    """A model that embeds the words of its own vocabulary, optionally from pretrained vectors."""

    embeddings: str | None = Field(None, description="pretrained word vectors: spacy-md or a spaCy model/vocab folder")
    embeddings_mode: Literal["static", "non-static"] = Field(
        "non-static", description="static: frozen vectors; non-static: fine-tuned (Kim 2014)"
    )

    @field_validator("embed_dim", "d_model", check_fields=False)
    @classmethod
    def _size_fits_vectors(cls, value: int, info: ValidationInfo) -> int:
        size = VECTOR_SIZES.get(cast(str, info.data.get("embeddings")))  # None finds nothing
        if size and value != size:
            raise PydanticCustomError(
                "vectors_size",
                "must be {size} to match the {name} vectors of model.embeddings",
                {"size": size, "name": info.data["embeddings"]},
            )
        return value

    @model_validator(mode="after")
    def _one_embedding_source(self):
        if self.embeddings and getattr(self, "init", None):  # model.init brings a pretrained encoder's own embeddings
            raise PydanticCustomError("embeddings_init", "model.embeddings and model.init both set the word embeddings; drop one")
        return self


class RNNModelConfig(_WordModelBase):
    arch: Literal["rnn", "lstm", "gru", "bilstm", "bigru"]
    embed_dim: int = Field(gt=0)
    hidden_dim: int = Field(gt=0)
    num_layers: int = Field(1, gt=0)
    pooling: Literal["last", "max", "mean"] = "max"
    tie_weights: bool = Field(False, description="task lm: share the input embedding with the output layer")

    @property
    def cell(self) -> str:
        return self.arch.removeprefix("bi")

    @property
    def bidirectional(self) -> bool:
        return self.arch.startswith("bi")


class BiLSTMCRFModelConfig(_WordModelBase):
    """A sequence tagger (task tag): word embeddings → BiLSTM → per-word scores → CRF (Huang et
    al., 2015; Lample et al., 2016). `tag.crf=false` makes it a softmax BiLSTM tagger."""

    arch: Literal["bilstm-crf"]
    embed_dim: int = Field(gt=0)
    hidden_dim: int = Field(gt=0, description="per direction")
    num_layers: int = Field(1, gt=0)
    char_features: Literal["none", "cnn", "lstm"] = Field(
        "none", description="a character encoding of each word: cnn (Ma & Hovy 2016) or lstm (Lample et al. 2016)"
    )
    char_dim: int = Field(30, gt=0, description="character embedding size (Ma & Hovy 30, Lample et al. 25)")
    char_hidden: int = Field(30, gt=0, description="char cnn: filters (Ma & Hovy 30); char lstm: units per direction (Lample 25)")
    char_width: int = Field(3, gt=0, description="char cnn: window in characters")
    max_word_chars: int = Field(30, gt=0, description="characters read per word (longer words: their first ones)")
    casing_dim: int = Field(0, ge=0, description="embedding size of the word's casing class (Reimers & Gurevych 2017); 0: none")
    vector_words: int = Field(
        0,
        ge=0,
        description="with model.embeddings: also give the N most frequent words of the vectors a row of the "
        "vocabulary, so words never seen in training keep their pretrained vector",
    )

    @model_validator(mode="after")
    def _vector_words_need_vectors(self) -> BiLSTMCRFModelConfig:
        if self.vector_words and not self.embeddings:
            raise PydanticCustomError(
                "vector_words", "model.vector_words adds the words of model.embeddings; set model.embeddings too"
            )
        return self


class CNNModelConfig(_WordModelBase):
    arch: Literal["cnn"]
    embed_dim: int = Field(gt=0)
    filter_sizes: list[int] = Field(min_length=1)
    num_filters: int = Field(gt=0)


class TransformerModelConfig(_WordModelBase):
    arch: Literal["transformer"]
    d_model: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    ff_dim: int = Field(gt=0)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    pooling: Literal["cls", "mean", "max"] = "mean"
    num_segments: int = Field(0, ge=0, description="segment (token type) embeddings: 2 in a BERT encoder, 0 none")
    init: str | None = Field(None, description="classify: a pretrain run whose encoder, vocabulary and sizes to fine-tune")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModelConfig:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        return self


class GPTModelConfig(_ModelBase):
    """A GPT written from scratch (task lm): pre-norm causal self-attention blocks."""

    arch: Literal["gpt"]
    d_model: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    ff_dim: int = Field(gt=0)
    max_len: int = Field(1024, gt=0, description="longest context in tokens (learned positions stop here)")
    positional: Literal["learned", "sinusoidal"] = "learned"
    tie_weights: bool = Field(True, description="share the token embedding with the output layer (GPT-2 does)")
    bias: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> GPTModelConfig:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        return self


class HFModelConfig(_ModelBase):
    """A pretrained `transformers` encoder with a classification head (transfer learning)."""

    arch: Literal["hf"]
    model: str = Field("minilm-l6", description="built-in name (minilm-l6; task lm: smollm2-135m), a model folder or a hub id")
    strategy: Literal["full", "frozen", "llrd"] = Field(
        "full", description="full fine-tuning; frozen encoder + trained head; layer-wise lr decay"
    )
    layer_decay: float = Field(0.8, gt=0, le=1, description="llrd: lr factor per layer going down")
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(0.1, ge=0.0, lt=1.0)


class Seq2SeqModelConfig(_ModelBase):
    """An RNN encoder-decoder (task translate; Sutskever et al., 2014): the encoder's final states
    start the decoder. `seq2seq-attn` adds attention over the encoder outputs (Bahdanau et al.,
    2015: additive; Luong et al., 2015: dot or general, with input feeding; `dot`: plain dot
    product on the decoder outputs, as the course builds it)."""

    arch: Literal["seq2seq", "seq2seq-attn"]
    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    embed_dim: int = Field(gt=0)
    hidden_dim: int = Field(gt=0, description="decoder state, and encoder output (both directions together)")
    num_layers: int = Field(1, gt=0)
    bidirectional: bool = Field(True, description="the encoder reads both ways (hidden_dim / 2 per direction)")
    attention: Literal["bahdanau", "luong-dot", "luong-general", "dot"] | None = Field(
        None, validate_default=True, description="seq2seq-attn: the score function (default bahdanau); seq2seq has none"
    )
    tie_embeddings: bool = Field(False, description="the output layer reuses the target embedding (needs embed_dim)")

    @field_validator("attention")
    @classmethod
    def _attention_fits_arch(cls, attention: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("arch") == "seq2seq-attn":
            return attention or "bahdanau"
        if attention is not None:
            raise PydanticCustomError("no_attention", "arch seq2seq has no attention; use model.arch=seq2seq-attn")
        return None

    @model_validator(mode="after")
    def _halves(self) -> Seq2SeqModelConfig:
        if self.bidirectional and self.hidden_dim % 2:
            raise ValueError(f"hidden_dim={self.hidden_dim} must be even: a bidirectional encoder gives each direction half")
        return self


class TransformerSeq2SeqModelConfig(_ModelBase):
    """A Transformer encoder-decoder (task translate; Vaswani et al., 2017), pre-norm."""

    arch: Literal["transformer-seq2seq"]
    d_model: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_layers: int = Field(gt=0, description="encoder layers, and as many decoder layers")
    ff_dim: int = Field(gt=0)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_len: int = Field(512, gt=0, description="longest source or target in tokens (learned positions stop here)")
    tie_embeddings: bool = Field(True, description="the output layer is the target embedding (Press & Wolf, 2017)")
    share_embeddings: bool = Field(False, description="one embedding for source and target (needs translate.shared_vocab)")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerSeq2SeqModelConfig:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        return self


ModelConfig = Annotated[
    Union[
        RNNModelConfig,
        CNNModelConfig,
        TransformerModelConfig,
        GPTModelConfig,
        HFModelConfig,
        BiLSTMCRFModelConfig,
        Seq2SeqModelConfig,
        TransformerSeq2SeqModelConfig,
    ],
    Field(discriminator="arch"),
]
ARCHS = ("rnn", "lstm", "gru", "bilstm", "bigru", "cnn", "transformer", "hf")  # the classifiers
LM_ARCHS = ("rnn", "lstm", "gru", "gpt", "hf")  # the architectures of task lm
TAG_ARCHS = ("bilstm-crf", "transformer", "hf")  # the sequence taggers of task tag
TRANSLATE_ARCHS = ("seq2seq", "seq2seq-attn", "transformer-seq2seq")  # the encoder-decoders of task translate
MODEL_ARCHS = (*ARCHS, "gpt", "bilstm-crf", *TRANSLATE_ARCHS)  # every value of model.arch

# Training defaults that differ by architecture, applied unless the user sets the key:
# pretrained encoders fine-tune with a small learning rate for a few epochs (Devlin et al. 2019),
# while a frozen encoder's head learns like any small network.
ARCH_TRAIN_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("hf", "full"): {"lr": 5e-5, "epochs": 3, "batch_size": 32, "precision": "auto", "patience": 2},
    ("hf", "llrd"): {"lr": 1e-4, "epochs": 3, "batch_size": 32, "precision": "auto", "patience": 2},
    ("hf", "frozen"): {"lr": 2e-3, "epochs": 5, "batch_size": 32, "precision": "auto", "patience": 2},
    # RNN encoder-decoders learn numbers-en-fr several times faster at 3e-3 than at 1e-3 (Adam)
    ("seq2seq", "full"): {"lr": 3e-3},
    ("seq2seq-attn", "full"): {"lr": 3e-3},
}


Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class TrainConfig(StrictModel):
    """The one training loop's knobs (Lightning `Trainer` underneath)."""

    epochs: int = Field(10, gt=0, description="maximum epochs")
    batch_size: int = Field(50, gt=0)
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after any warm-up)")
    optimizer: Literal["adam", "adamw", "sgd", "adadelta"] = "adam"
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="adam/adamw: the moving-average rates β1, β2")
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int | None = Field(
        None, gt=0, description="stop after this many optimiser steps (or epochs, or max_minutes: the first reached)"
    )
    lr_schedule: Literal["constant", "cosine", "linear", "inverse_sqrt"] = Field(
        "constant",
        description="after warm-up: lr throughout, decayed to min_lr by the last step (cosine, linear: max_steps, "
        "else epochs × batches, or the end of max_minutes with schedule_clock), or "
        "lr · sqrt(warmup_steps / step) (inverse_sqrt, the Transformer's; never below min_lr)",
    )
    warmup_steps: int = Field(0, ge=0, description="optimiser steps of linear warm-up to lr")
    min_lr: float = Field(0.0, ge=0, description="cosine/linear: the learning rate at the end of the schedule")
    eval_every_steps: int | None = Field(
        None, gt=0, description="validate every this many optimiser steps (default: after each epoch)"
    )
    grad_clip: float | None = Field(5.0, gt=0)
    seed: int = 13
    max_minutes: float | None = Field(None, gt=0, description="stop training after this much wall-clock time")
    schedule_clock: bool = Field(
        False,
        description="with max_minutes: a cosine/linear decay also follows the clock, reaching min_lr when the "
        "time budget ends (whichever of steps and time is further along), so a run stopped by the "
        "clock ends at the bottom of its schedule",
    )
    patience: int | None = Field(
        3, ge=1, description="early-stopping validations (epochs, or eval_every_steps) without improvement; null: off"
    )
    monitor: Literal["val_acc", "val_f1", "val_loss", "val_bleu"] = Field(
        "val_acc", description="the validation metric that picks the best checkpoint and stops early (val_bleu: translate)"
    )
    bucket: bool = Field(True, description="length-bucketed batches (less padding)")
    batch_tokens: int | None = Field(
        None,
        gt=0,
        description="translate: batches of about this many padded tokens (sentences × the longest source or "
        "target in them) instead of batch_size sentences, made from length-sorted data",
    )
    precision: Literal["32-true", "bf16-mixed", "auto"] = Field(
        "32-true", description="auto: bf16 autocast where the CPU/GPU has bf16 instructions, else fp32"
    )
    log_every_n_steps: int = Field(50, gt=0)
    checkpoint_every_steps: int | None = Field(
        None,
        gt=0,
        description="also write checkpoints/last.ckpt every this many optimiser steps, mid-epoch "
        "(--resume then continues from that batch, as if never stopped); default: after each validation",
    )
    devices: int = Field(1, gt=0, description="processes (CPU) or GPUs per machine; > 1 trains data-parallel (DDP)")
    num_nodes: int = Field(1, gt=0, description="machines taking part in DDP training (launch one process per GPU with torchrun)")
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_fork"] = Field(
        "auto",
        description="with devices or num_nodes > 1: ddp re-runs the command once per extra process (CLI, "
        "scripts, torchrun); ddp_spawn/ddp_fork start them from inside the Python call "
        "(api.train in a program or notebook; fork: CPU only, no start-up cost)",
    )

    @property
    def world_size(self) -> int:
        """Training processes in all: devices × num_nodes."""
        return self.devices * self.num_nodes

    @field_validator("warmup_steps")
    @classmethod
    def _warmup_fits(cls, value: int, info: ValidationInfo) -> int:
        max_steps = info.data.get("max_steps")
        if max_steps is not None and value >= max_steps:
            raise PydanticCustomError("warmup", "must be fewer than train.max_steps={max_steps}", {"max_steps": max_steps})
        return value

    @field_validator("min_lr")
    @classmethod
    def _min_lr_fits(cls, value: float, info: ValidationInfo) -> float:
        lr = info.data.get("lr")
        if lr is not None and value > lr:
            raise PydanticCustomError("min_lr", "must not exceed train.lr={lr}", {"lr": lr})
        return value

    @model_validator(mode="after")
    def _inverse_sqrt_warms_up(self) -> TrainConfig:
        if self.lr_schedule == "inverse_sqrt" and not self.warmup_steps:
            raise PydanticCustomError(
                "inverse_sqrt", "lr_schedule=inverse_sqrt decays from the end of warm-up: set train.warmup_steps (e.g. 4000)"
            )
        return self


class PretrainConfig(StrictModel):
    """Masked-LM pretraining of a BERT-style encoder (task pretrain; Devlin et al., 2019)."""

    mask_prob: float = Field(
        0.15, gt=0.0, lt=1.0, description="share of real tokens chosen for prediction (80% [MASK], 10% random, 10% kept)"
    )
    nsp: bool = Field(False, description="also learn next-sentence prediction on sentence pairs")
    short_seq_prob: float = Field(0.1, ge=0.0, le=1.0, description="share of examples packed to a random shorter length")


class TagConfig(StrictModel):
    """Sequence tagging (task tag): the label scheme the model learns and its output layer."""

    scheme: Literal["bio", "iobes"] = Field("bio", description="tags the model learns; data in BIO/IOB1/IOBES is converted")
    crf: bool | None = Field(None, description="a CRF output layer; default: on for bilstm-crf, off for transformer and hf")


class TranslateConfig(StrictModel):
    """Translation (task translate): vocabularies, training tricks and the decoding defaults."""

    shared_vocab: bool = Field(False, description="one vocabulary learned on both sides (joint BPE); else one per side")
    target_vocab_size: int | None = Field(
        None, gt=4, description="separate vocabularies: the target side's size (default: tokenizer.vocab_size, as the source's)"
    )
    val_bleu_sentences: int = Field(
        500,
        ge=0,
        description="validation BLEU (val_bleu, greedy decoding) on this many validation sources, the same ones "
        "at every validation; 0: off",
    )
    scheduled_sampling: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="RNN decoders: the chance of feeding the decoder its own previous prediction instead of the true "
        "token, ramped up linearly from 0 to this over the epochs (Bengio et al., 2015)",
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="of the target distribution (Szegedy et al., 2016)")
    beam: int = Field(5, ge=1, description="beam size for the test split and the default of translate (1: greedy)")
    length_penalty: float = Field(1.0, description="beam search: score / length^penalty (> 1 favours longer output)")
    max_length_ratio: float = Field(2.0, gt=0, description="a translation stops at ratio × source tokens + offset")
    max_length_offset: int = Field(10, ge=0)


class RunConfig(StrictModel):
    """Everything that defines a training run."""

    task: Literal["classify", "lm", "tag", "translate", "pretrain"] = Field(
        "classify", description="what the run learns: classify, lm, tag, translate or pretrain (seqlab.registry)"
    )
    name: str | None = Field(None, description="run folder name; default: <task>-<arch>-<time>")
    output_dir: str = "runs"
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    # the preset before-validator fills the sizes, which the pydantic plugin cannot see
    model: ModelConfig = Field(default_factory=lambda: RNNModelConfig(arch="lstm"))  # type: ignore[call-arg]
    train: TrainConfig = TrainConfig()
    pretrain: PretrainConfig | None = Field(None, validate_default=True, description="task pretrain only")
    tag: TagConfig | None = Field(None, validate_default=True, description="task tag only")
    translate: TranslateConfig | None = Field(None, validate_default=True, description="task translate only")

    @field_validator("task", mode="before")
    @classmethod
    def _one_name(cls, task: Any) -> Any:
        return canonical(task) if isinstance(task, str) else task  # an alias (pretrain-mlm, generate, ner)

    @field_validator("tokenizer")
    @classmethod
    def _vocabulary_fits_task(cls, tokenizer: TokenizerConfig, info: ValidationInfo) -> TokenizerConfig:
        if info.data.get("task") == "pretrain" and tokenizer.level != "wordpiece":
            raise _task_error("masked-LM pretraining needs tokenizer.level=wordpiece (it has [MASK], [CLS], [SEP])")
        if info.data.get("task") == "lm" and tokenizer.level == "wordpiece":
            raise _task_error("a language model reads word, char or bpe tokens; wordpiece is for masked-LM pretraining")
        if info.data.get("task") == "translate" and tokenizer.level == "wordpiece":
            raise _task_error("translation reads char, bpe or word tokens; wordpiece is for masked-LM pretraining")
        if info.data.get("task") == "tag" and tokenizer.level != "word":
            raise _task_error("a tagger labels the words of its data: tokenizer.level=word (arch hf uses its own sub-words)")
        return tokenizer

    @field_validator("model")
    @classmethod
    def _model_fits_task(cls, model: Any, info: ValidationInfo) -> Any:
        task = info.data.get("task")
        if task == "lm" and model.arch not in LM_ARCHS:
            raise _task_error(f"a language model is one of {', '.join(LM_ARCHS)}, not {model.arch!r} (it reads left to right)")
        if task != "lm" and model.arch == "gpt":
            raise _task_error("gpt is a language model: train it with task lm (seqlab train lm --arch gpt)")
        if task == "tag" and model.arch not in TAG_ARCHS:
            raise _task_error(f"a sequence tagger is one of {', '.join(TAG_ARCHS)}, not {model.arch!r}")
        if task != "tag" and model.arch == "bilstm-crf":
            raise _task_error("bilstm-crf is a sequence tagger: train it with task tag (seqlab train tag --arch bilstm-crf)")
        if task == "tag" and getattr(model, "init", None):
            raise _task_error(
                "model.init fine-tunes a pretrained encoder for classification; a tagger starts fresh (or use arch hf)"
            )
        if task == "tag" and model.head == "sigmoid":
            raise _task_error("a tagger scores every tag of every word: model.head=softmax")
        if task == "tag" and getattr(model, "strategy", None) == "llrd":
            raise _task_error("a tagger fine-tunes with strategy full or frozen, not llrd")
        if task == "translate" and model.arch not in TRANSLATE_ARCHS:
            hint = " (the Transformer encoder-decoder is transformer-seq2seq)" if model.arch == "transformer" else ""
            raise _task_error(f"a translation model is one of {', '.join(TRANSLATE_ARCHS)}, not {model.arch!r}{hint}")
        if task != "translate" and model.arch in TRANSLATE_ARCHS:
            raise _task_error(
                f"{model.arch} is an encoder-decoder: train it with task translate (seqlab train translate --arch {model.arch})"
            )
        if (
            task == "lm"
            and model.arch == "gpt"
            and info.data.get("tokenizer")
            and model.max_len < info.data["tokenizer"].max_length
        ):
            raise _task_error(
                f"model.max_len={model.max_len} is shorter than the training context tokenizer.max_length={info.data['tokenizer'].max_length}"
            )
        if task == "pretrain":
            if model.arch != "transformer":
                raise _task_error(f"masked-LM pretraining trains a transformer encoder, not {model.arch!r}; drop model.arch")
            if model.init:
                raise _task_error("model.init fine-tunes a pretrained encoder (task classify); drop it to pretrain")
            if getattr(model, "embeddings", None):
                raise _task_error("model.embeddings needs word tokens; masked-LM pretraining learns its wordpiece vectors")
        return model

    @field_validator("train")
    @classmethod
    def _monitor_fits_task(cls, train: TrainConfig, info: ValidationInfo) -> TrainConfig:
        if info.data.get("task") in ("pretrain", "lm") and train.monitor != "val_loss":
            raise _task_error(f"{info.data['task']} is monitored on val_loss, not {train.monitor}")
        if info.data.get("task") == "tag" and train.monitor == "val_acc":
            raise _task_error("a tagger is monitored on val_f1 (entity-level F1) or val_loss, not val_acc")
        if info.data.get("task", "classify") != "translate":
            if train.monitor == "val_bleu":
                raise _task_error("val_bleu is translation's metric (task translate)")
            if train.batch_tokens:
                raise _task_error("train.batch_tokens is implemented for task translate; use train.batch_size")
        return train

    @field_validator("pretrain")
    @classmethod
    def _pretrain_fits_task(cls, pretrain: PretrainConfig | None, info: ValidationInfo) -> PretrainConfig | None:
        if info.data.get("task") != "pretrain":
            if pretrain is not None:
                raise _task_error("only for task pretrain")
            return None
        pretrain = pretrain or PretrainConfig()
        model = info.data.get("model")
        if pretrain.nsp and model is not None and model.num_segments < 2:
            raise _task_error("next-sentence prediction needs model.num_segments=2 (segments A and B)")
        return pretrain

    @field_validator("tag")
    @classmethod
    def _tag_fits_task(cls, tag: TagConfig | None, info: ValidationInfo) -> TagConfig | None:
        if info.data.get("task") != "tag":
            if tag is not None:
                raise _task_error("only for task tag")
            return None
        tag = tag or TagConfig()
        model = info.data.get("model")
        if tag.crf is None and model is not None:  # written out, so config.yaml says what was built
            tag = tag.model_copy(update={"crf": model.arch == "bilstm-crf"})
        return tag

    @field_validator("translate")
    @classmethod
    def _translate_fits_task(cls, translate: TranslateConfig | None, info: ValidationInfo) -> TranslateConfig | None:
        if info.data.get("task") != "translate":
            if translate is not None:
                raise _task_error("only for task translate")
            return None
        translate = translate or TranslateConfig()
        train = info.data.get("train")
        if train is not None and train.monitor == "val_bleu" and not translate.val_bleu_sentences:
            raise _task_error("train.monitor=val_bleu needs translate.val_bleu_sentences > 0")
        if translate.target_vocab_size and translate.shared_vocab:
            raise _task_error("translate.target_vocab_size is for separate vocabularies; a shared one has tokenizer.vocab_size")
        model = info.data.get("model")
        if model is not None and model.arch == "transformer-seq2seq":
            if translate.scheduled_sampling:
                raise _task_error(
                    "scheduled sampling feeds an RNN decoder its own predictions step by step; "
                    "a Transformer decoder reads the whole target at once: set it to 0"
                )
            if model.share_embeddings and not translate.shared_vocab:
                raise _task_error("model.share_embeddings needs one vocabulary for both sides: translate.shared_vocab=true")
        return translate


def _task_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("task_mismatch", message)


# Defaults that differ by task, filled in section by section unless the user set the key. A BERT
# pretrained here needs a WordPiece vocabulary (with [MASK]) and a transformer with segment
# embeddings; 8,000 wordpieces suit corpora of a few million characters, and 128-token examples
# keep CPU pretraining affordable.
TASK_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "pretrain": {
        "tokenizer": {"level": "wordpiece", "vocab_size": 8000, "max_length": 128},
        "model": {"arch": "transformer", "num_segments": 2},
        "train": {"monitor": "val_loss", "optimizer": "adamw", "weight_decay": 0.01, "batch_size": 32},
        "pretrain": {},
    },
    # Language models: characters of Shakespeare, contiguous splits (the first 90% trains, the last
    # 10% is held out, as published results on such text use), 128-token training windows.
    "lm": {
        "data": {"train": "shakespeare", "valid_fraction": 0.1, "test_fraction": 0.0},
        "tokenizer": {"level": "char", "lowercase": False, "max_length": 128},
        "model": {"arch": "gpt"},
        "train": {"monitor": "val_loss", "optimizer": "adamw", "weight_decay": 0.1, "batch_size": 32, "patience": 3},
    },
}
# Sequence tagging: the silver NER corpus, cased word tokens (case is most of what marks a name;
# words seen once are learned as their shape, see tasks/tag.py), sentences of up to 128 words
# (arch hf: sub-words), entity-level F1 selects the epoch.
TASK_DEFAULTS["tag"] = {
    "data": {"train": "silver-ner"},
    "tokenizer": {"level": "word", "lowercase": False, "min_frequency": 2, "max_length": 128},
    "model": {"arch": "bilstm-crf"},
    "train": {"monitor": "val_f1", "batch_size": 32},
    "tag": {},
}
# Translation: the generated numbers-en-fr pairs (5% valid, 5% test), reversible BPE pieces that
# keep case and spacing (the output is compared character for character), an attention seq2seq,
# and validation BLEU (greedy, on a fixed subset of the validation sources) to pick the
# checkpoint; with max_minutes the learning-rate decay ends where the time budget does.
TASK_DEFAULTS["translate"] = {
    "data": {"train": "numbers-en-fr", "valid_fraction": 0.05, "test_fraction": 0.05},
    "tokenizer": {"level": "bpe", "vocab_size": 8000, "lowercase": False, "max_length": 128},
    "model": {"arch": "seq2seq-attn"},
    "train": {"monitor": "val_bleu", "batch_size": 64, "schedule_clock": True},
    "translate": {},
}
DEFAULT_CAUSAL_LM = "smollm2-135m"  # task lm, arch hf, when model.model is not given


def build_config(base: dict[str, Any] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Validate `base` (nested dict) with `a.b=value` overrides applied on top.

    Raises:
        SeqlabError: an override without '=', an unknown key or a value of the wrong type,
            named by its dotted path.
    """
    raw = _deep_copy(base or {})
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(raw, key, value)
    if isinstance(raw.get("task"), str):
        raw["task"] = canonical(raw["task"])  # older names of a task (pretrain-mlm) keep working
    for section, defaults in TASK_DEFAULTS.get(cast(str, raw.get("task")), {}).items():  # None finds nothing
        given = raw.setdefault(section, {})
        if isinstance(given, dict) and given.get("arch", defaults.get("arch")) == defaults.get("arch"):
            raw[section] = {**defaults, **given}  # (model defaults fit their own architecture only)
    model = raw.get("model")
    if isinstance(model, dict) and "arch" not in model:
        model["arch"] = "lstm"
    if raw.get("task") == "lm" and isinstance(model, dict) and model.get("arch") == "hf":
        model.setdefault("model", DEFAULT_CAUSAL_LM)
    if isinstance(model, dict) and isinstance(raw.setdefault("train", {}), dict):
        defaults = ARCH_TRAIN_DEFAULTS.get(cast("tuple[str, str]", (model.get("arch"), model.get("strategy", "full"))), {})
        raw["train"] = {**defaults, **raw["train"]}
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise SeqlabError(_describe(err)) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config file and apply overrides."""
    path = Path(path)
    if path.is_dir():
        raise SeqlabError(f"config file {path} is a directory, not a file; give the YAML file itself")
    if not path.is_file():
        raise SeqlabError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SeqlabError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise SeqlabError(f"{path} must hold a mapping of config sections (data, model, train, ...)")
    return build_config(raw, overrides)


def save_config(config: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise SeqlabError(f"override {item!r} must look like section.key=value, e.g. train.epochs=5")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    return key.strip(), value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SeqlabError(f"config key {key!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _describe(err: ValidationError) -> str:
    """The first validation problem as one line: 'config: model.hidden_dim: ... (got 'abc')'."""
    first = err.errors()[0]
    location = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p))
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "union_tag_invalid":
        message = f"unknown architecture {first['ctx']['tag']!r}; choose one of {', '.join(MODEL_ARCHS)}"
    got = first.get("input")
    shown = f" (got {got!r})" if first["type"] not in ("missing", "union_tag_invalid") and not isinstance(got, dict) else ""
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"config: {location or 'config'}: {message}{shown}{more}"


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in MODEL_ARCHS


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}
