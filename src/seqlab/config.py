"""Typed run configuration: validated when built, saved beside the weights, overridable as a.b=value.

A run is fully described by one `RunConfig`; `config.yaml` in a run folder is its resolved form
(every preset value written out), so `seqlab train runs/x/config.yaml` reproduces the run.
An unknown key or a wrong type is a `SeqlabError` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from seqlab.errors import SeqlabError
from seqlab.models.presets import PRESETS, family_of


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


class TokenizerConfig(StrictModel):
    """A vocabulary trained on the training split with Hugging Face `tokenizers`."""

    level: Literal["word", "char", "bpe"] = "word"
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
        return {**defaults, **values}


class RNNModelConfig(_ModelBase):
    arch: Literal["rnn", "lstm", "gru", "bilstm", "bigru"]
    embed_dim: int = Field(gt=0)
    hidden_dim: int = Field(gt=0)
    num_layers: int = Field(1, gt=0)
    pooling: Literal["last", "max", "mean"] = "max"

    @property
    def cell(self) -> str:
        return self.arch.removeprefix("bi")

    @property
    def bidirectional(self) -> bool:
        return self.arch.startswith("bi")


class CNNModelConfig(_ModelBase):
    arch: Literal["cnn"]
    embed_dim: int = Field(gt=0)
    filter_sizes: list[int] = Field(min_length=1)
    num_filters: int = Field(gt=0)


class TransformerModelConfig(_ModelBase):
    arch: Literal["transformer"]
    d_model: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    ff_dim: int = Field(gt=0)
    positional: Literal["sinusoidal", "learned"] = "sinusoidal"
    pooling: Literal["cls", "mean", "max"] = "mean"

    @model_validator(mode="after")
    def _heads_divide(self) -> "TransformerModelConfig":
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
        return self


ModelConfig = Annotated[
    Union[RNNModelConfig, CNNModelConfig, TransformerModelConfig], Field(discriminator="arch")
]
ARCHS = ("rnn", "lstm", "gru", "bilstm", "bigru", "cnn", "transformer")


class TrainConfig(StrictModel):
    """The one training loop's knobs (Lightning `Trainer` underneath)."""

    epochs: int = Field(10, gt=0, description="maximum epochs")
    batch_size: int = Field(50, gt=0)
    lr: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "adamw", "sgd", "adadelta"] = "adam"
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(5.0, gt=0)
    seed: int = 13
    patience: int | None = Field(3, ge=1, description="early-stopping epochs without improvement; null: off")
    monitor: Literal["val_acc", "val_f1", "val_loss"] = "val_acc"
    bucket: bool = Field(True, description="length-bucketed batches (less padding)")
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    log_every_n_steps: int = Field(50, gt=0)


class RunConfig(StrictModel):
    """Everything that defines a training run."""

    task: Literal["classify"] = "classify"
    name: str | None = Field(None, description="run folder name; default: <task>-<arch>-<time>")
    output_dir: str = "runs"
    data: DataConfig = DataConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    model: ModelConfig = Field(default_factory=lambda: RNNModelConfig(arch="lstm"))
    train: TrainConfig = TrainConfig()


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
    model = raw.get("model")
    if isinstance(model, dict) and "arch" not in model:
        model["arch"] = "lstm"
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise SeqlabError(_describe(err)) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML config file and apply overrides."""
    path = Path(path)
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
        message = f"unknown architecture {first['ctx']['tag']!r}; choose one of {', '.join(ARCHS)}"
    got = first.get("input")
    shown = f" (got {got!r})" if first["type"] not in ("missing", "union_tag_invalid") and not isinstance(got, dict) else ""
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"config: {location or 'config'}: {message}{shown}{more}"


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in ARCHS


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}
