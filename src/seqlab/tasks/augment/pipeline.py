"""Text augmentation's entry points behind `api.augment` and `seqlab augment`: texts, data sets, a filter.

`augment(texts, method, n, seed, **options)` checks the input and the options and runs one of
the four methods of `seqlab.tasks.augment.methods` (synonym, eda, backtranslate, contextual; the units,
taggers, synonym sources and the methods themselves are described there); `augment_tagged`
does the same for CoNLL sentences, NER-safe: entity spans kept word for word and the tags
rebuilt from the units (`to_tagged`), so they stay aligned. `load_masked_lm` and
`load_translator` open the models of the model-based methods: a seqlab run (through `api`) or
a Hugging Face folder.

`augment_file` augments a data set file: a table (.csv/.tsv/.jsonl, every column kept, a
`variant` column added) or CoNLL, optionally keeping only the variants a classifier still gives
their row's label (`LabelFilter`), and writes the result through a temporary file.

Randomness: each text gets its own `random.Random(f"{seed}|{text}")` (`rng_for`), so a text's
variants do not depend on what else is in the batch; `seed=None` draws fresh ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.data.conll import Span, TaggedSentence
from seqlab.data.texts import check_texts
from seqlab.errors import SeqlabError
from seqlab.files import atomic_open
from seqlab.tasks.augment.methods import (
    HFMaskedLM,
    HFTranslator,
    SeqlabTranslator,
    Unit,
    analyze,
    backtranslate,
    contextual,
    make_options,
    render,
    rng_for,
    say_unchanged,
    units_of_tagged,
    word_variants,
    wordnet_synonyms,
)

# --------------------------------------------------------------------------- public entry points


def augment(
    texts: str | Sequence[str], method: str = "synonym", n: int = 4, seed: int | None = 0, **options: Any
) -> list[list[str]]:
    """`n` augmented variants of each text (the methods: `seqlab.tasks.augment.methods`).

    A text with nothing to change (only stop words, or no word WordNet knows) comes back `n`
    times unchanged, with a warning in the log saying so.

    Returns:
        One list of `n` strings per input text, in input order.

    Raises:
        SeqlabError: empty or non-text input, an unknown method or option, n < 1, a missing
            model, or WordNet not fetched while offline; always one line.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SeqlabError(f"n must be a whole number ≥ 1 (got {n!r}): how many variants to make per text")
    opts = make_options(method, options)
    texts = check_texts(texts, "augment")
    if method == "backtranslate":
        forward, backward = load_translator(opts.forward), load_translator(opts.backward)
        check_round_trip(forward, backward)
        return backtranslate(texts, n, seed, opts, forward, backward)
    if method == "contextual":
        return contextual(texts, n, seed, opts, load_masked_lm(opts.model))
    lookup = opts.synonyms or wordnet_synonyms()
    result, unchanged = [], []
    for number, (text, units) in enumerate(zip(texts, analyze(texts, opts.tagger)), 1):
        variants = word_variants(units, method, n, rng_for(seed, text), opts, lookup)
        if variants is None:
            unchanged.append(number)
            result.append([text] * n)
        else:
            result.append([render(v) for v in variants])
    say_unchanged(unchanged, len(texts), method)
    return result


def augment_tagged(
    sentences: Sequence[TaggedSentence], method: str = "eda", n: int = 4, seed: int | None = 0, **options: Any
) -> list[list[TaggedSentence]]:
    """NER-safe augmentation of CoNLL sentences: entity spans kept word for word, tags realigned.

    Only the word-level methods (synonym, eda) can say where every entity went; back-translation
    and the masked LM rewrite the sentence and are refused.
    """
    if method not in ("synonym", "eda"):
        raise SeqlabError(f"--method {method} cannot keep entity tags aligned; tagged (CoNLL) data takes synonym or eda")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SeqlabError(f"n must be a whole number ≥ 1 (got {n!r})")
    opts = make_options(method, options)
    lookup = opts.synonyms or wordnet_synonyms()
    result = []
    for sentence in sentences:
        units = units_of_tagged(sentence, opts.tagger)
        variants = word_variants(units, method, n, rng_for(seed, " ".join(sentence.tokens)), opts, lookup)
        result.append([to_tagged(v) for v in variants] if variants else [sentence] * n)
    return result


def to_tagged(units: Sequence[Unit]) -> TaggedSentence:
    """Tokens and entity spans of units: an entity unit becomes one span over its words."""
    tokens: list[str] = []
    spans: list[Span] = []
    for u in units:
        words = u.tokens()
        if u.label is not None:
            spans.append((len(tokens), len(tokens) + len(words), u.label))
        tokens.extend(words)
    return TaggedSentence(tokens, spans)


# --------------------------------------------------------------------------- model loaders


def load_masked_lm(spec: str | Path) -> Any:
    """A seqlab pretrain run or a Hugging Face masked-LM folder, with `.fill_mask` and `.mask_token`."""
    folder = Path(spec)
    if (folder / "config.yaml").is_file():
        from seqlab.data.tokenize import MASK
        from seqlab.tasks.pretrain.pipeline import load_masked_lm as load_pretrained

        pipe = load_pretrained(folder)
        pipe.mask_token = MASK
        return pipe
    if (folder / "config.json").is_file():
        return HFMaskedLM(folder)
    raise SeqlabError(
        f"{spec} is neither a seqlab pretrain run nor a Hugging Face masked-LM folder; "
        "pretrain one with `seqlab pretrain mlm` or give a folder saved with save_pretrained"
    )


def load_translator(spec: str | Path) -> SeqlabTranslator | HFTranslator:
    """A seqlab translate run or a Hugging Face seq2seq folder, with `.sample(texts, ...)`."""
    folder = Path(spec)
    if (folder / "config.yaml").is_file():
        from seqlab.tasks.translate.pipeline import load_translator as load_run

        return SeqlabTranslator(load_run(folder))
    if (folder / "config.json").is_file():
        return HFTranslator(folder)
    raise SeqlabError(
        f"{spec} is neither a seqlab translate run nor a Hugging Face seq2seq folder; "
        "train one with `seqlab train translate` or give a folder saved with save_pretrained"
    )


def check_round_trip(forward: Any, backward: Any) -> None:
    """Two seqlab runs trained on built-in Tatoeba data must go there and back: the forward
    run's direction reversed is the backward run's (en-fr then fr-en)."""
    from seqlab.data import tatoeba

    directions = []
    for model in (forward, backward):
        data = getattr(getattr(model, "pipe", None), "config", None)
        data = data.data if data is not None else None
        if data is None or not tatoeba.is_tatoeba(data.train):
            return
        directions.append(tatoeba.resolve(data.train, data.direction)[1])
    there, back = directions
    if there.split("-")[::-1] != back.split("-"):
        raise SeqlabError(
            f"back-translation goes there and back: the first run translates {there}, so the second must translate "
            f"{'-'.join(there.split('-')[::-1])}, not {back}"
        )


# --------------------------------------------------------------------------- data sets and the filter

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".json")
TAGGED_SUFFIXES = (".conll", ".conll03", ".conllx", ".iob", ".iob2", ".bio", ".bioes", ".iobes", ".col")
VARIANT_COLUMN = "variant"  # 0: the original row, 1..n: its variants


@dataclass
class FileResult:
    """What `augment_file` wrote: rows read, rows written, variants dropped by the filter."""

    output: Path
    rows: int
    written: int
    dropped: int = 0
    unchanged: int = 0


class LabelFilter:
    """Keeps a variant only if a classifier still gives its original label ≥ `min_confidence`."""

    def __init__(self, run: str | Path, min_confidence: float):
        from seqlab.tasks.classify.pipeline import load as load_classifier

        if not 0.0 <= min_confidence <= 1.0:
            raise SeqlabError(f"--min-confidence must be between 0 and 1 (got {min_confidence})")
        self.pipe = load_classifier(run)
        self.min_confidence = min_confidence

    def keep(self, texts: Sequence[str], labels: Sequence[str]) -> list[bool]:
        """(N,) whether each text's probability of its label reaches the threshold."""
        if not texts:
            return []
        unknown = sorted(set(labels) - set(self.pipe.labels))
        if unknown:
            raise SeqlabError(
                f"label {unknown[0]!r} is not one the filter's classifier knows ({', '.join(self.pipe.labels)}); "
                "filter with a run trained on the same labels"
            )
        probs = self.pipe.predict_proba(list(texts))  # (N, C)
        columns = [self.pipe.labels.index(label) for label in labels]
        return [float(probs[row, col]) >= self.min_confidence for row, col in enumerate(columns)]


def augment_file(
    input: str | Path,
    output: str | Path,
    method: str = "eda",
    n: int = 4,
    seed: int | None = 0,
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    filter_run: str | Path | None = None,
    min_confidence: float = 0.8,
    batch_size: int = 256,
    on_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> FileResult:
    """Augment a data set file: every row (or CoNLL sentence) followed by its `n` variants.

    Tables (.csv/.tsv/.jsonl) keep every column (labels, ids, ...) and gain `variant` (0 = the
    original row); CoNLL files are augmented NER-safe (`augment_tagged`). With `filter_run`, a
    variant is written only if that classifier gives it its row's label with probability
    ≥ `min_confidence`. The output is written to a temporary file and renamed into place, so a
    failure never leaves half a file. `on_progress(done, total)` reports rows done.
    """
    source, target = Path(input), Path(output)
    if source.resolve() == target.resolve():
        raise SeqlabError(f"--output {target} is the input file; write the augmented data to a new file")
    kind = _kind(source)
    if kind != _kind(target):
        raise SeqlabError(f"--output {target.name} must be the same kind of file as --input {source.name} (a table or CoNLL)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SeqlabError(f"-n must be a whole number ≥ 1 (got {n!r})")
    make_options(method, dict(options))  # option errors before any reading or model loading
    if kind == "tagged":
        if filter_run is not None:
            raise SeqlabError("--filter needs labelled texts; it does not apply to tagged (CoNLL) data")
        return _augment_conll(source, target, method, n, seed, batch_size, on_progress, options)
    rows, text_key, label_key = read_table(source, text_column, label_column)
    keeper = None
    if filter_run is not None:
        if label_key is None:
            raise SeqlabError(f"--filter needs a label for every row, and {source} has no label column; pass --label-column")
        keeper = LabelFilter(filter_run, min_confidence)
    out_rows: list[dict] = []
    dropped = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        variants = augment([r[text_key].strip() for r in batch], method, n, seed, **options)
        for row, texts in zip(batch, variants):
            fresh = [t for t in dict.fromkeys(texts) if t != row[text_key].strip()]
            if keeper is not None:
                kept = keeper.keep(fresh, [str(row[label_key]).strip()] * len(fresh))
                dropped += len(fresh) - sum(kept)
                fresh = [t for t, ok in zip(fresh, kept) if ok]
            out_rows.append({**row, VARIANT_COLUMN: 0})
            out_rows += [{**row, text_key: t, VARIANT_COLUMN: j} for j, t in enumerate(fresh, 1)]
        if on_progress:
            on_progress(min(start + batch_size, len(rows)), len(rows))
    with atomic_open(target, newline="") as handle:
        write_table(handle, target, out_rows)
    return FileResult(target, len(rows), len(out_rows), dropped)


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return "table"
    if suffix in TAGGED_SUFFIXES:
        return "tagged"
    raise SeqlabError(
        f"{path}: unsupported file type {suffix or '(no suffix)'!r}; use .csv, .tsv, .jsonl (labelled texts) "
        f"or {', '.join(TAGGED_SUFFIXES[:3])} (CoNLL)"
    )


def read_table(path: Path, text_column: str | None, label_column: str | None) -> tuple[list[dict], str, str | None]:
    """Every row of a .csv/.tsv/.jsonl with all its columns, and the text and label keys.

    The file is checked by `data.readers` first (one-line errors with line numbers); a file
    without a label column is accepted (no filter then).
    """
    from seqlab.data import readers

    try:
        readers.read_examples(path, text_column=text_column, label_column=label_column)
        labelled = True
    except SeqlabError as err:
        if label_column is not None or "no label column" not in str(err):
            raise
        readers.read_texts(path, text_column=text_column)
        labelled = False
    content = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in readers.JSON_SUFFIXES:
        rows = [json.loads(line) for line in content.split("\n") if line.strip()]
    else:
        import csv
        import io

        reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=readers.DELIMITERS[path.suffix.lower()])
        rows = [row for row in reader if any((v or "").strip() for v in row.values())]
    columns = list(rows[0])
    text_key = _column(columns, text_column, readers.TEXT_COLUMNS)
    label_key = _column(columns, label_column, readers.LABEL_COLUMNS) if labelled else None
    return rows, text_key, label_key


def _column(columns: list[str], explicit: str | None, defaults: tuple[str, ...]) -> str:
    """The column `data.readers` chose (it has validated the choice already)."""
    lowered = {c.strip().lower(): c for c in reversed(columns)}
    if explicit is not None:
        return explicit if explicit in columns else lowered[explicit.strip().lower()]
    return next(lowered[name] for name in defaults if name in lowered)


def write_table(handle, path: Path, rows: list[dict]) -> None:
    if path.suffix.lower() in (".jsonl", ".json"):
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    import csv

    from seqlab.data.readers import DELIMITERS

    writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=DELIMITERS[path.suffix.lower()], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def _augment_conll(
    source: Path,
    target: Path,
    method: str,
    n: int,
    seed: int | None,
    batch_size: int,
    on_progress: Callable[[int, int], None] | None,
    options: dict,
) -> FileResult:
    from seqlab.data.conll import read_conll

    sentences = read_conll(source)
    out: list[TaggedSentence] = []
    for start in range(0, len(sentences), batch_size):
        batch = sentences[start : start + batch_size]
        for sentence, variants in zip(batch, augment_tagged(batch, method, n, seed, **options)):
            out.append(sentence)
            out += [v for v in {" ".join(v.tokens): v for v in variants}.values() if v.tokens != sentence.tokens]
        if on_progress:
            on_progress(min(start + batch_size, len(sentences)), len(sentences))
    with atomic_open(target, newline="") as handle:
        write_conll(handle, out)
    return FileResult(target, len(sentences), len(out))


def write_conll(handle, sentences: Sequence[TaggedSentence]) -> None:
    """CoNLL columns: `token<TAB>BIO tag` per line, a blank line after each sentence."""
    for sentence in sentences:
        for token, tag in zip(sentence.tokens, sentence.tags("bio")):
            handle.write(f"{token}\t{tag}\n")
        handle.write("\n")
