"""What this machine's processor can do, for the choices that depend on it (training precision,
decoding dtypes). Imports torch and nothing of seqlab's, so inference code can ask too."""

from __future__ import annotations

from pathlib import Path

import torch


def bf16_supported() -> bool:
    """True where bfloat16 arithmetic is native: a CUDA GPU that supports it, or a CPU with
    AVX512_BF16 or AMX (elsewhere bf16 is emulated and slower than fp32)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
