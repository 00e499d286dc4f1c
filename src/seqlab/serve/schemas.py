"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema at
/openapi.json).

Requests refuse unknown fields, so a misspelt option is an error rather than silently ignored.
The server's own limits (text length, number of texts, `max_new_tokens` cap) depend on
`ServeSettings` and are checked in `app.py`; what does not (an empty list, `top_k >= 1`) is
checked here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Text = Annotated[str, Field(min_length=1, description="non-empty text")]
ModelName = Annotated[str | None, Field(description="a model name from /v1/models; default: the first one that does this task")]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- requests


class ClassifyRequest(Request):
    model: ModelName = None
    texts: list[Text] = Field(min_length=1, description="texts to classify")
    attention: bool = Field(
        False, description="also return every layer's (heads × tokens × tokens) attention weights (attention models)"
    )


class GenerateRequest(Request):
    model: ModelName = None
    prompt: str = Field(description="text to continue (may be empty for a model with a beginning-of-text token)")
    max_new_tokens: int = Field(50, ge=1, description="tokens to add; capped by the server's --max-new-tokens")
    do_sample: bool = Field(False, description="sample instead of taking the likeliest token")
    temperature: float | None = Field(
        None, ge=0, le=100, description="sampling temperature (do_sample only); 0 = greedy decoding"
    )
    top_k: int | None = Field(None, ge=0, description="sample among the k likeliest tokens, 0 = off (do_sample only)")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass (do_sample only)")
    repetition_penalty: float | None = Field(None, gt=0, le=100, description="> 1 discourages repeated tokens")
    num_beams: int = Field(1, ge=1, le=8, description="beam search width (not with stream)")
    stop: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, max_length=8, description="stop when one of these appears"
    )
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="seed for reproducible sampling")
    stream: bool = Field(
        False, description='answer with Server-Sent Events: one `data: {"text": piece}` per new piece, then `event: done`'
    )


class NerRequest(Request):
    model: ModelName = None
    texts: list[Text] = Field(min_length=1, description="texts to find entities in")


class TranslateRequest(Request):
    model: ModelName = None
    texts: list[Text] = Field(min_length=1, description="sentences to translate")
    beam: int | None = Field(None, ge=1, le=16, description="beam width (1 = greedy; default: the run's translate.beam)")
    attention: bool = Field(True, description="also return the target × source alignment matrix")


class FillMaskRequest(Request):
    model: ModelName = None
    text: Text = Field(description="text with [MASK] where a word is to be predicted")
    top_k: int = Field(5, ge=1, le=50, description="candidates per [MASK]")


class AugmentOptions(Request):
    """`api.augment`'s options, typed; which ones a method takes is checked by `api.augment`."""

    rate: float | None = Field(None, ge=0, le=1, description="synonym/contextual: fraction of the words replaced")
    alpha_sr: float | None = Field(None, ge=0, le=1, description="eda: synonym replacement rate")
    alpha_ri: float | None = Field(None, ge=0, le=1, description="eda: random insertion rate")
    alpha_rs: float | None = Field(None, ge=0, le=1, description="eda: random swap rate")
    p_rd: float | None = Field(None, ge=0, le=1, description="eda: random deletion probability")
    tagger: Literal["spacy", "wordnet"] | None = Field(None, description="part-of-speech source for synonyms")
    model: str | None = Field(None, description="contextual: a fill-mask model this server holds")
    forward: str | None = Field(None, description="backtranslate: a translate model of this server (text → pivot)")
    backward: str | None = Field(None, description="backtranslate: a translate model of this server (pivot → text)")
    top_k: int | None = Field(None, ge=0, le=1000, description="contextual/backtranslate: sample among the k likeliest")
    top_p: float | None = Field(None, gt=0, le=1, description="backtranslate: nucleus sampling mass")
    temperature: float | None = Field(None, ge=0, le=100, description="contextual/backtranslate: sampling temperature")


class AugmentRequest(Request):
    texts: list[Text] = Field(min_length=1, description="texts to augment")
    method: str = Field(description="augmentation method (see /v1/models: `augment`)")
    n: int = Field(2, ge=1, le=16, description="augmented versions per text")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed: the same request gives the same augmentations")
    options: AugmentOptions = Field(default_factory=AugmentOptions, description="method options")


# --------------------------------------------------------------------------- responses


class Error(BaseModel):
    error: str = Field(description="what is wrong and what to do, one line")
    code: str = Field(description="a short machine-readable kind, e.g. unknown_model, invalid_request, too_large")


class Attention(BaseModel):
    tokens: list[str]
    layers: list[list[list[list[float]]]] = Field(description="per layer: heads × query tokens × key tokens, rows sum to 1")


class Classification(BaseModel):
    label: str
    probabilities: dict[str, float]
    attention: Attention | None = None


class ClassifyResponse(BaseModel):
    model: str
    results: list[Classification]


class GenerateResponse(BaseModel):
    model: str
    text: str = Field(description="the new text, without the prompt")


class Entity(BaseModel):
    text: str
    label: str
    start: int = Field(description="character offset of the first character")
    end: int = Field(description="character offset after the last character")
    description: str | None = None


class NerResult(BaseModel):
    text: str
    entities: list[Entity]


class NerResponse(BaseModel):
    model: str
    results: list[NerResult]


class Translation(BaseModel):
    source: str
    translation: str
    source_tokens: list[str] | None = None
    target_tokens: list[str] | None = Field(None, description="the output tokens and [EOS]")
    attention: list[list[float]] | None = Field(
        None, description="target tokens × source tokens (None: a model without attention)"
    )


class TranslateResponse(BaseModel):
    model: str
    results: list[Translation]


class Candidate(BaseModel):
    token: str
    probability: float


class FillMaskResponse(BaseModel):
    model: str
    masks: list[list[Candidate]] = Field(description="per [MASK], the likeliest tokens first")


class Augmented(BaseModel):
    text: str
    augmentations: list[str]


class AugmentResponse(BaseModel):
    method: str
    results: list[Augmented]


class ModelInfo(BaseModel):
    name: str
    task: str = Field(description="classify, generate, ner, translate or fill-mask")
    source: str = Field(description="the run folder or built-in it was loaded from")
    details: dict = Field(default_factory=dict, description="labels, attention, architecture... by task")
    report: str | None = Field(
        None, description="where the run's HTML report is (/v1/models/{name}/report); None for a built-in model"
    )


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    augment: list[str] = Field(default_factory=list, description="augmentation methods /v1/augment offers")


class Health(BaseModel):
    status: str
    models: int
