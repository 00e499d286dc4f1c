"""`seqlab tour`: the course's practical tasks, one after another, on real data.

Each step trains what the course sheet builds, prints what it achieved and saves its plots under
the tour folder. `STEPS` lists them in order; a new task adds its step there.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from seqlab import api, plots
from seqlab.config import build_config

# The course's toy data set, verbatim: three positive and two negative sentences.
COURSE_SENTENCES = [
    ("I love this course", "1"),
    ("This is an amazing class", "1"),
    ("I enjoy learning NLP", "1"),
    ("I hate this subject", "0"),
    ("This class is boring", "0"),
]
COURSE_QUERIES = {"I enjoy learning NLP": "1", "I hate this subject": "0"}


def _fresh(folder: Path) -> Path:
    """Tour runs are re-made every time: remove the previous tour's copy first."""
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def toy_lstm(out: Path, console: Console) -> str:
    """The course's first example: an LSTM with a sigmoid output on five sentences."""
    data = out / "data" / "course_sentences.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(COURSE_SENTENCES)
    _fresh(out / "toy-lstm")
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.arch=lstm",
            "model.head=sigmoid",
            "model.embed_dim=16",
            "model.hidden_dim=16",
            "model.pooling=last",
            "model.dropout=0",
            "train.epochs=60",
            "train.batch_size=5",
            "train.lr=0.01",
            "train.patience=null",
            f"output_dir={out}",
            "name=toy-lstm",
        ],
    )
    pipe = api.load(api.train(cfg, progress="off"))
    correct = 0
    for text, pred in zip(COURSE_QUERIES, pipe.predict(list(COURSE_QUERIES))):
        correct += pred["label"] == COURSE_QUERIES[text]
        console.print(f"  {text!r} → {pred['label']}  (P(positive) = {pred['probabilities']['1']:.3f})")
    return f"toy LSTM: {correct}/{len(COURSE_QUERIES)} course predictions as expected"


def course_cnn(out: Path, console: Console) -> str:
    """The course's CNN, Embedding → Conv1D(128, 5) → global max pool → Dense(sigmoid), on the
    10,568 Rotten Tomatoes sentences (80/10/10 split)."""
    _fresh(out / "course-cnn")
    cfg = build_config(
        {},
        [
            "data.train=rt-polarity",
            "model.arch=cnn",
            "model.head=sigmoid",
            "model.embed_dim=128",
            "model.filter_sizes=[5]",
            "model.num_filters=128",
            "model.dropout=0.5",
            "train.epochs=10",
            f"output_dir={out}",
            "name=course-cnn",
        ],
    )
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"]
    plots.learning_curves(run / "logs" / "metrics.csv", out / "course-cnn-learning-curves.png", "course CNN on rt-polarity")
    plots.confusion_matrix(
        metrics["confusion_matrix"], metrics["labels"], out / "course-cnn-confusion.png", "course CNN, rt-polarity test"
    )
    pipe = api.load(run)
    for text in ("a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés."):
        pred = pipe.predict([text])[0]
        console.print(f"  {text!r} → {pred['label']} ({pred['probabilities'][pred['label']]:.3f})")
    return f"course CNN on rt-polarity: test accuracy {100 * metrics['accuracy']:.1f}% ({metrics['examples']:,} sentences)"


def transformer_attention(out: Path, console: Console) -> str:
    """A Transformer encoder built from scratch, and what its heads attend to."""
    _fresh(out / "transformer")
    cfg = build_config(
        {},
        [
            "data.train=rt-polarity",
            "model.arch=transformer",
            "model.pooling=cls",
            "model.dropout=0.3",
            "train.epochs=10",
            "train.lr=0.0005",
            f"output_dir={out}",
            "name=transformer",
        ],
    )
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"]
    pipe = api.load(run)
    sentence = "the acting is superb but the story is painfully thin"
    tokens, layers = pipe.attention(sentence)
    last = layers[-1].mean(dim=0)  # average of the heads, (T, T)
    image = plots.attention_heatmap(
        last.numpy(), tokens, tokens, out / "transformer-attention.png", f"last layer, mean of {layers[-1].size(0)} heads"
    )
    console.print(f"  attention of {sentence!r}: {image}")
    return f"Transformer from scratch on rt-polarity: test accuracy {100 * metrics['accuracy']:.1f}%"


def architecture_comparison(out: Path, console: Console) -> str:
    """LSTM, BiLSTM, Kim CNN and Transformer on the same split: the real comparison."""
    rows, folder = api.compare(
        "classify",
        ["lstm", "bilstm", "cnn", "transformer"],
        ["train.epochs=10", "cnn:model.preset=base", "transformer:train.lr=0.0005", "transformer:model.dropout=0.3"],
        data="rt-polarity",
        output_dir=out / "comparison",
    )
    for row in rows:
        console.print(
            f"  {row['arch']:<12} accuracy {100 * row['accuracy_mean']:.1f}%  {row['parameters']:>10,} parameters  "
            f"{row['train_seconds']:.0f} s training  {row['sentences_per_second']:,.0f} sentences/s"
        )
    best = max(rows, key=lambda r: r["accuracy_mean"])
    return f"comparison: best {best['arch']} at {100 * best['accuracy_mean']:.1f}% (chart {folder / 'comparison.png'})"


# The course's RNN text generation: a word-level model trained on three sentences continues
# "I love" by five words. (Our three sentences; the course's expected continuation.)
GENERATION_SENTENCES = [
    "I love learning NLP with deep learning",
    "Deep learning models learn patterns from data",
    "NLP with transformers is fun",
]
GENERATION_SEED, GENERATION_EXPECTED = "I love", "learning nlp with deep learning"
GPT2_PROMPT = "Natural Language Processing with transformers is"


def rnn_generation(out: Path, console: Console) -> str:
    """The course's word-level RNN language model: three sentences in, five words out."""
    data = out / "data" / "generation_sentences.txt"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("\n".join(GENERATION_SENTENCES) + "\n", encoding="utf-8")
    _fresh(out / "rnn-lm")
    cfg = build_config(
        {"task": "lm"},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "model.arch=lstm",
            "tokenizer.level=word",
            "tokenizer.lowercase=true",
            "tokenizer.max_length=6",
            "model.embed_dim=32",
            "model.hidden_dim=64",
            "model.dropout=0",
            "train.epochs=150",
            "train.batch_size=8",
            "train.lr=0.01",
            "train.patience=null",
            f"output_dir={out}",
            "name=rnn-lm",
        ],
    )
    pipe = api.load_generator(api.train(cfg, progress="off"))
    words = pipe.generate(GENERATION_SEED, max_new_tokens=5)[0].strip()
    console.print(f"  {GENERATION_SEED!r} → {GENERATION_SEED} {words}")
    verdict = "as in the course" if words == GENERATION_EXPECTED else f"the course has {GENERATION_EXPECTED!r}"
    return f"word-level LSTM LM: '{GENERATION_SEED} {words}' ({verdict})"


def gpt_sampling(out: Path, console: Console) -> str:
    """The course's GPT-2 call (80 new tokens, temperature 0.7, top-k 50, top-p 0.95, pad = eos,
    attention mask passed) with the built-in SmolLM2-135M, since GPT-2's weights are not
    reachable offline."""
    pipe = api.load_generator("smollm2-135m")
    started = time.perf_counter()
    text = pipe.generate(GPT2_PROMPT, max_new_tokens=80, do_sample=True, temperature=0.7, top_k=50, top_p=0.95, seed=0)[0]
    seconds = time.perf_counter() - started
    console.print(f"  [bold]{GPT2_PROMPT}[/bold]{text}")
    return f"SmolLM2-135M sampled 80 tokens in {seconds:.1f} s (temperature 0.7, top-k 50, top-p 0.95)"


NER_SENTENCE = "Apple is looking at buying U.K. startup for $1 billion"
NER_EXPECTED = [("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")]


def spacy_ner(out: Path, console: Console) -> str:
    """The course's spaCy example: en_core_web_sm's entities in one sentence, and a displaCy page."""
    from seqlab.tasks.tag import pipeline as ner

    (entities,) = api.ner(NER_SENTENCE, model="en_core_web_sm")
    pairs = [e.pair for e in entities]
    console.print(f"  {pairs}")
    page = out / "ner.html"
    page.write_text(ner.as_html([NER_SENTENCE], [entities], title="seqlab tour: named entities"), encoding="utf-8")
    verdict = "as in the course" if pairs == NER_EXPECTED else f"the course has {NER_EXPECTED}"
    return f"spaCy en_core_web_sm found {len(pairs)} entities ({verdict}); displaCy page {page}"


# The PyTorch seq2seq tutorial's slice of the same Tatoeba file: short sentences about people
# ("i am", "he is", ...), here with their contractions as Tatoeba writes them.
TOUR_PREFIXES = (
    "i am ",
    "i'm ",
    "he is ",
    "he's ",
    "she is ",
    "she's ",
    "you are ",
    "you're ",
    "we are ",
    "we're ",
    "they are ",
    "they're ",
)
TOUR_MAX_WORDS = 10
# A step budget, so that the result does not depend on how busy the machine is; the clock only
# caps it (and then the decay follows the clock, `train.schedule_clock`).
TOUR_STEPS = 400
TOUR_MINUTES = 6.0
TOUR_SHOWN = 4  # held-out sentences translated on screen


def short_sentence(source: str) -> bool:
    """The tour's slice: at most `TOUR_MAX_WORDS` words, starting like "I am" / "he's"."""
    return len(source.split()) <= TOUR_MAX_WORDS and source.lower().startswith(TOUR_PREFIXES)


def write_tour_slice(folder: Path) -> dict[str, Path]:
    """train/valid/test TSV files of the short-sentence slice, cut from tatoeba-en-fr's standard
    splits (held out by English sentence), so no test sentence is trained on."""
    from seqlab.data import parallel, tatoeba

    splits = tatoeba.load_splits("tatoeba-en-fr")
    files = {}
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"train": splits.train, "valid": parallel.flatten(splits.valid), "test": parallel.flatten(splits.test)}
    for name, pairs in parts.items():
        files[name] = folder / f"tatoeba-en-fr-short-{name}.tsv"
        files[name].write_text("".join(f"{p.source}\t{p.target}\n" for p in pairs if short_sentence(p.source)), encoding="utf-8")
    return files


def translation_attention(out: Path, console: Console) -> str:
    """An attention seq2seq (Bahdanau) learns English → French on real sentences in
    `TOUR_STEPS` optimiser steps (a few minutes): the PyTorch tutorial's slice of tatoeba-en-fr (short sentences starting "I am",
    "he is", ...), held out by English sentence. It translates a few held-out sentences with
    beam search (multi-reference sentence BLEU for each), scores the whole held-out slice and
    draws where it looked. (The generated numbers-en-fr task stays available:
    `seqlab train translate --data numbers-en-fr`.)"""
    import sacrebleu

    from seqlab.data import parallel

    _fresh(out / "translate")
    files = write_tour_slice(out / "data")
    cfg = build_config(
        {"task": "translate"},
        [
            f"data.train={files['train']}",
            f"data.valid={files['valid']}",
            f"data.test={files['test']}",
            "model.arch=seq2seq-attn",
            "model.attention=bahdanau",
            "tokenizer.vocab_size=3000",
            "train.epochs=40",
            f"train.max_steps={TOUR_STEPS}",
            f"train.max_minutes={TOUR_MINUTES}",
            "train.lr_schedule=cosine",
            "train.warmup_steps=40",
            "train.min_lr=0.0003",
            "train.patience=null",
            "train.eval_every_steps=100",
            "train.batch_tokens=2000",
            f"output_dir={out}",
            "name=translate",
        ],
    )
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["test"]
    pipe = api.load_translator(run)
    refs = parallel.group_by_source(parallel.read_parallel(str(files["test"])).pairs)
    shown = refs[:: max(1, len(refs) // TOUR_SHOWN)][:TOUR_SHOWN]
    for ref, translation in zip(shown, pipe.translate([r.source for r in shown], beam=5)):
        bleu = sacrebleu.sentence_bleu(translation, list(ref.references)).score
        console.print(
            f"  {ref.source!r} → {translation!r}  [dim](BLEU {bleu:.0f} against {len(ref.references)} reference(s), "
            f"e.g. {ref.references[0]!r})[/dim]"
        )
    image = pipe.save_attention([shown[0].source], out / "translate-attention.png", beam=5)
    page = pipe.save_attention([r.source for r in shown], out / "translate-attention.html", beam=5)
    console.print(f"  alignments: {image}, {page}")
    return (
        f"attention seq2seq on a short-sentence slice of tatoeba-en-fr (at most {TOUR_STEPS} steps, {TOUR_MINUTES:g} min): held-out BLEU "
        f"{metrics['bleu']:.1f}, chrF {metrics['chrf']:.1f} ({metrics['examples']:,} English sentences, "
        f"{metrics['references']:,} references, beam {metrics['beam']})"
    )


SEED_SYNONYMS = {"happy": ["joyful", "cheerful"], "sad": ["unhappy", "sorrowful"]}
SEED_SENTENCE = "I am happy but sometimes sad"
SEED_EXPECTED = "I am cheerful but sometimes unhappy"  # the course's printed output


def synonym_augmentation(out: Path, console: Console) -> str:
    """The course's dictionary replacement, then the same idea with WordNet 3.0 (entities and
    stop words kept) and EDA, each 4 seeded variants."""
    variants = api.augment(SEED_SENTENCE, method="synonym", n=4, seed=0, synonyms=SEED_SYNONYMS)[0]
    console.print(f"  course dictionary {SEED_SYNONYMS}: {SEED_SENTENCE!r}")
    for variant in variants:
        console.print(f"    {variant}")
    review = "Apple's new film is a happy surprise, sharp and warm"
    for method in ("synonym", "eda"):
        console.print(f"  {method} (WordNet): {review!r}")
        for variant in api.augment(review, method=method, n=4, seed=0)[0]:
            console.print(f"    {variant}")
    found = "includes" if SEED_EXPECTED in variants else "does not include"
    return f"the course's synonym dictionary gives {len(variants)} variants ({found} the course's {SEED_EXPECTED!r}); WordNet synonym and EDA variants above"


STEPS: list[tuple[str, Callable[[Path, Console], str]]] = [
    ("1. LSTM text classifier on the course's five sentences", toy_lstm),
    ("2. The course's CNN sentiment model on real movie reviews", course_cnn),
    ("3. A Transformer encoder from scratch, with its attention", transformer_attention),
    ("4. LSTM vs BiLSTM vs CNN vs Transformer, side by side", architecture_comparison),
    ("5. A word-level LSTM language model continues 'I love'", rnn_generation),
    ("6. GPT-style sampling from a pretrained causal LM", gpt_sampling),
    ("7. Named entities with spaCy's en_core_web_sm", spacy_ner),
    ("8. An attention seq2seq learns English → French on real sentences, and shows its alignments", translation_attention),
    ("9. Synonym augmentation: the course's dictionary, then WordNet and EDA", synonym_augmentation),
]


def run_tour(out: Path, console: Console) -> list[str]:
    """Run every step, print a one-line result for each, return those lines."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    for title, step in STEPS:
        console.rule(title)
        step_started = time.perf_counter()
        results.append(step(out, console))
        console.print(f"[green]✓[/green] {results[-1]}  [dim]({time.perf_counter() - step_started:.0f} s)[/dim]")
    console.rule("tour summary")
    for line in results:
        console.print(f"  • {line}")
    console.print(f"plots and runs in {out}/  (total {time.perf_counter() - started:.0f} s)")
    return results
