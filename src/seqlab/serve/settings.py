"""The limits and batching knobs of one server process, validated when built."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class ServeSettings:
    """Everything `seqlab serve` lets an operator set, with defaults safe for a laptop.

    Attributes:
        max_body_bytes: largest request body; a bigger one is refused with 413 before it is read.
        max_text_chars: longest single text (or prompt) accepted.
        max_texts: most texts in one request.
        max_new_tokens: cap on `max_new_tokens` of /v1/generate.
        timeout_s: per-request limit; a request still waiting for its result after this gets 504
            (a stream is cut with an `error` event).
        max_batch_size: most texts one micro-batch holds (1: every request runs alone).
        batch_wait_ms: how long the first request of a batch waits for others to join it.
        threads: PyTorch intra-op threads for the whole process (None: PyTorch's default).
        max_active: per generate model, most sequences decoding at once in its running batch.
        max_queue: per model, most requests waiting (for a generate model's batch, or a
            micro-batch); one more is answered 503 with Retry-After.
        api_key: when set, every /v1 route needs `Authorization: Bearer <api_key>` (401 without).
        engine, dtype: `api.load_generator`'s for generate models (None: its defaults); engine
            "seqlab" runs GPT-2 and Llama weights in seqlab's own models, which batch in flight.
    """

    max_body_bytes: int = 1_000_000
    max_text_chars: int = 10_000
    max_texts: int = 64
    max_new_tokens: int = 256
    timeout_s: float = 30.0
    max_batch_size: int = 32
    batch_wait_ms: float = 5.0
    threads: int | None = None
    max_active: int = 16
    max_queue: int = 64
    api_key: str | None = field(default=None, repr=False)
    engine: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        positive = (
            "max_body_bytes",
            "max_text_chars",
            "max_texts",
            "max_new_tokens",
            "timeout_s",
            "max_batch_size",
            "max_active",
            "max_queue",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SeqlabError(f"serve setting {name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise SeqlabError(f"serve setting batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        if self.threads is not None and self.threads < 1:
            raise SeqlabError(f"serve setting threads must be at least 1, got {self.threads}")
        if self.api_key is not None and not self.api_key.strip():
            raise SeqlabError("serve setting api_key is empty; give a key or none")
