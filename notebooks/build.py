"""Write the course notebooks (notebooks/NN-*.ipynb) from the cells below, without outputs.

    .venv/bin/python notebooks/build.py          # after editing a cell here

The notebooks are generated, so the cells are reviewed here as code and git holds no outputs
(tests/test_notebooks.py checks both: each committed notebook equals what this script writes,
and each runs from top to bottom). Each notebook follows one practical task of the course, in
the course's order, with seqlab's Python API only (no shell escapes), small enough to run on a
laptop CPU: small model sizes, few epochs, slices of the real data sets.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
KERNEL = {"name": "seqlab", "display_name": "Python (seqlab)", "language": "python"}  # `make notebooks` registers it

# The first code cell of every notebook: imports, and a fresh folder for its runs.
SETUP = """import shutil
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import HTML, Image, display

import seqlab
from seqlab import plots

OUT = Path("runs/notebooks/{name}")  # this notebook's runs, made anew each time it runs
shutil.rmtree(OUT, ignore_errors=True)
OUT.mkdir(parents=True)"""

M, C = "markdown", "code"

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["01-lstm-classifier"] = [
    (
        M,
        """# 1. An LSTM text classifier

The course's first practical task: an LSTM reads a sentence word by word and a sigmoid unit says
whether it is positive. First on the course's five sentences, then on 10,000 real movie-review
sentences (Rotten Tomatoes, `rt-polarity`).""",
    ),
    (C, SETUP),
    (
        M,
        "## The course's five sentences\n\nThree positive, two negative: written to a CSV file, the format `seqlab.train` reads.",
    ),
    (
        C,
        """import csv

sentences = [
    ("I love this course", "1"),
    ("This is an amazing class", "1"),
    ("I enjoy learning NLP", "1"),
    ("I hate this subject", "0"),
    ("This class is boring", "0"),
]
data = OUT / "course_sentences.csv"
with data.open("w", newline="") as handle:
    csv.writer(handle).writerows([("text", "label"), *sentences])""",
    ),
    (
        M,
        """Embedding (16) → LSTM (16) → the last hidden state → one sigmoid unit, as in the course.
Five sentences are all the data, so nothing is held out (`valid_fraction=0`) and training runs a
fixed 60 epochs.""",
    ),
    (
        C,
        """run = seqlab.train(
    "classify", data=str(data), arch="lstm", epochs=60, batch_size=5, lr=0.01,
    output_dir=str(OUT), name="toy-lstm", progress="off",
    overrides=["data.valid_fraction=0", "data.test_fraction=0", "model.head=sigmoid", "model.embed_dim=16",
               "model.hidden_dim=16", "model.pooling=last", "model.dropout=0", "train.patience=null"],
)
pipe = seqlab.load(run)
for text, prediction in zip(["I enjoy learning NLP", "I hate this subject"], pipe(["I enjoy learning NLP", "I hate this subject"])):
    print(f"{text!r} → {prediction['label']}   P(positive) = {prediction['probabilities']['1']:.3f}")""",
    ),
    (
        M,
        """## Real reviews

Five sentences teach a model nothing it can carry to new text. The same kind of model (128-wide
embedding and LSTM, the `small` preset) on 4,000 training sentences of `rt-polarity` with a
5,000-word vocabulary, for 2 epochs: a slice, to stay quick. The held-out 10 % test split is
scored; all 8,400 training sentences and more epochs do better (the CNN of notebook 3, the
comparison of `seqlab tour`).""",
    ),
    (
        C,
        """run = seqlab.train("classify", data="rt-polarity", arch="lstm", epochs=2, output_dir=str(OUT), name="rt-lstm",
                   progress="off", overrides=["data.limit=4000", "tokenizer.vocab_size=5000"])
import json

metrics = json.loads((run / "metrics.json").read_text())["test"]  # the run's own held-out test split
print(f"test accuracy {100 * metrics['accuracy']:.1f}% on {metrics['examples']:,} sentences")
display(Image(plots.learning_curves(run / "logs" / "metrics.csv", OUT / "curves.png", "LSTM on rt-polarity")))""",
    ),
    (
        C,
        """pipe = seqlab.load(run)
for text in ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés."]:
    prediction = pipe(text)[0]
    print(f"{prediction['label']:>9}  {prediction['probabilities'][prediction['label']]:.3f}  {text}")""",
    ),
    (
        M,
        """Every run folder also holds `report.html`, one page with its learning curves, confusion
matrix and sample predictions (open it in a browser, or write it again with `seqlab report RUN`).""",
    ),
    (C, """print(run / "report.html", f"{(run / 'report.html').stat().st_size:,} bytes")"""),
]

NOTEBOOKS["02-rnn-text-generation"] = [
    (
        M,
        """# 2. Text generation with an RNN

A word-level LSTM language model learns three sentences and continues "I love" word by word,
as in the course: at each step it predicts the next word from the ones before.""",
    ),
    (C, SETUP),
    (
        C,
        """text = OUT / "sentences.txt"
text.write_text("I love learning NLP with deep learning\\n"
                "Deep learning models learn patterns from data\\n"
                "NLP with transformers is fun\\n")
run = seqlab.train(
    "lm", data=str(text), arch="lstm", level="word", epochs=150, batch_size=8, lr=0.01,
    output_dir=str(OUT), name="rnn-lm", progress="off",
    overrides=["data.valid_fraction=0", "tokenizer.lowercase=true", "tokenizer.max_length=6", "model.embed_dim=32",
               "model.hidden_dim=64", "model.dropout=0", "train.patience=null"],
)
generator = seqlab.load(run)
print("I love", generator.generate("I love", max_new_tokens=5)[0])""",
    ),
    (
        M,
        """Greedy decoding always takes the likeliest word, so it repeats what the model memorised. Sampling
draws the next word from the predicted distribution instead; the temperature sharpens (< 1) or
flattens (> 1) it:""",
    ),
    (
        C,
        """for temperature in (1.0, 3.0, 10.0):
    samples = generator.generate(["I love"] * 3, max_new_tokens=5, do_sample=True, temperature=temperature, seed=0)
    print(f"temperature {temperature}:", " | ".join(f"I love {s.strip()}" for s in samples))""",
    ),
]

NOTEBOOKS["03-cnn-sentiment"] = [
    (
        M,
        """# 3. A CNN for sentiment

The course's convolutional model: Embedding (128) → Conv1D (128 filters of width 5) → global max
pooling → one sigmoid unit, on the Rotten Tomatoes sentences (80/10/10 split), with the 10,000
most frequent words, for 3 epochs.""",
    ),
    (C, SETUP),
    (
        C,
        """import json

run = seqlab.train(
    "classify", data="rt-polarity", arch="cnn", epochs=3, output_dir=str(OUT), name="course-cnn", progress="off",
    overrides=["model.head=sigmoid", "model.embed_dim=128", "model.filter_sizes=[5]", "model.num_filters=128",
               "model.dropout=0.5", "tokenizer.vocab_size=10000"],
)
metrics = json.loads((run / "metrics.json").read_text())["test"]  # the run's own held-out test split
print(f"test accuracy {100 * metrics['accuracy']:.1f}%, macro-F1 {100 * metrics['macro_f1']:.1f}% "
      f"({metrics['examples']:,} sentences)")""",
    ),
    (
        C,
        """display(Image(plots.learning_curves(run / "logs" / "metrics.csv", OUT / "curves.png", "course CNN on rt-polarity")))
display(Image(plots.confusion_matrix(metrics["confusion_matrix"], metrics["labels"], OUT / "confusion.png", "test split")))""",
    ),
    (M, "Each filter of width 5 responds to one 5-word pattern anywhere in the sentence; max pooling keeps its strongest match."),
    (
        C,
        """pipe = seqlab.load(run)
for text in ["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés.",
             "not bad at all", "not good at all"]:
    prediction = pipe(text)[0]
    print(f"{prediction['label']:>9}  {prediction['probabilities'][prediction['label']]:.3f}  {text}")""",
    ),
]

NOTEBOOKS["04-spacy-ner"] = [
    (
        M,
        """# 4. Named entities with spaCy

The course's example with spaCy's small English pipeline, `en_core_web_sm` (built into seqlab,
no download), then drawn with displaCy.""",
    ),
    (C, SETUP),
    (
        C,
        """sentence = "Apple is looking at buying U.K. startup for $1 billion"
(entities,) = seqlab.load("en_core_web_sm").entities([sentence])
print([(entity.text, entity.label) for entity in entities])""",
    ),
    (M, "The course's output: `[('Apple', 'ORG'), ('U.K.', 'GPE'), ('$1 billion', 'MONEY')]`. displaCy marks them in the text:"),
    (
        C,
        """from spacy import displacy

doc = {"text": sentence, "ents": [{"start": e.start, "end": e.end, "label": e.label} for e in entities]}
display(HTML(displacy.render(doc, style="ent", manual=True, jupyter=False)))""",
    ),
    (
        C,
        """texts = ["Sundar Pichai announced on Tuesday that Google will open an office in Paris.",
         "The Eiffel Tower was finished in 1889 and cost 7.8 million francs."]
found = seqlab.load("en_core_web_sm").entities(texts)
display(HTML(displacy.render([{"text": t, "ents": [{"start": e.start, "end": e.end, "label": e.label} for e in ents]}
                              for t, ents in zip(texts, found)], style="ent", manual=True, jupyter=False)))""",
    ),
]

NOTEBOOKS["05-seq2seq-translation"] = [
    (
        M,
        """# 5. Sequence-to-sequence translation with LSTMs

An LSTM encoder reads an English number ("two hundred and five") into one fixed-size vector; an
LSTM decoder writes the French ("deux cent cinq") from it, one word at a time. The
`numbers-en-fr` pairs are generated (num2words), so every answer can be checked: 5,000 of them
(5 % held out for the test), word tokens, a 64-wide embedding and 128-wide LSTMs, 5 epochs.""",
    ),
    (C, SETUP),
    (
        C,
        """run = seqlab.train("translate", data="numbers-en-fr:5000", arch="seq2seq", level="word", epochs=5,
                   output_dir=str(OUT), name="seq2seq", progress="off", overrides=["model.embed_dim=64", "model.hidden_dim=128"])
translator = seqlab.load(run)
for english in ["twenty-one", "three hundred and twelve", "nine thousand, four hundred and eighty-seven"]:
    print(f"{english!r} → {translator.translate(english, beam=5)[0]!r}")""",
    ),
    (
        M,
        """The whole source has to fit through one vector: the longer the number, the more the decoder
loses. Exact match by source length on the held-out test split:""",
    ),
    (
        C,
        """import json

test = json.loads((run / "metrics.json").read_text())["test"]
print(f"exact match {100 * test['exact_match']:.1f}%, BLEU {test['bleu']:.1f} on {test['examples']:,} test numbers")
rows = test["by_length"]
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar([row["bucket"] for row in rows], [100 * row["exact_match"] for row in rows])
ax.set_xlabel(f"source length ({rows[0]['unit']})")
ax.set_ylabel("exact match (%)")
plt.show()""",
    ),
]

NOTEBOOKS["06-gpt-sampling"] = [
    (
        M,
        """# 6. GPT-style sampling: temperature, top-k, top-p

The course calls GPT-2 with `max_new_tokens=80, temperature=0.7, top_k=50, top_p=0.95`. GPT-2's
weights cannot be fetched offline, so this uses SmolLM2-135M, a causal LM of the same family
built into seqlab, with the same settings (30 new tokens, to stay quick on a CPU).""",
    ),
    (C, SETUP),
    (
        C,
        """generator = seqlab.load("smollm2-135m")
prompt = "Natural Language Processing with transformers is"
print(prompt + generator.generate(prompt, max_new_tokens=30, do_sample=True, temperature=0.7, top_k=50, top_p=0.95, seed=0)[0])""",
    ),
    (
        M,
        """Each setting reshapes the next-token distribution before a token is drawn:

- **temperature** divides the logits: low is nearly greedy, high is nearly uniform;
- **top-k** keeps the k likeliest tokens;
- **top-p** (nucleus) keeps the smallest set whose probabilities add up to p.

The same prompt and seed, one setting at a time (greedy first):""",
    ),
    (
        C,
        """settings = {
    "greedy": dict(do_sample=False),
    "temperature 0.3": dict(do_sample=True, temperature=0.3),
    "temperature 1.5": dict(do_sample=True, temperature=1.5),
    "top-k 5": dict(do_sample=True, top_k=5),
    "top-p 0.5": dict(do_sample=True, top_p=0.5),
}
for name, options in settings.items():
    print(f"{name:>16}: {generator.generate(prompt, max_new_tokens=12, seed=0, **options)[0]!r}")""",
    ),
]

NOTEBOOKS["07-synonym-augmentation"] = [
    (
        M,
        """# 7. Data augmentation with synonyms

New training sentences from old ones: replace words with synonyms. First the course's hand-made
dictionary, then WordNet 3.0, which knows far more words (seqlab keeps names and stop words).""",
    ),
    (C, SETUP),
    (
        C,
        """from seqlab.api import augment

synonyms = {"happy": ["joyful", "cheerful"], "sad": ["unhappy", "sorrowful"]}
for variant in augment("I am happy but sometimes sad", method="synonym", n=4, seed=0, synonyms=synonyms)[0]:
    print(variant)""",
    ),
    (M, "The course prints `I am cheerful but sometimes unhappy`, one of the four. With WordNet instead of the dictionary:"),
    (
        C,
        """review = "Apple's new film is a happy surprise, sharp and warm"
for variant in augment(review, method="synonym", n=4, seed=0)[0]:
    print(variant)""",
    ),
    (M, "EDA (Wei & Zou, 2019) adds random insertion, swaps and deletions to the synonym replacement:"),
    (
        C,
        """for variant in augment(review, method="eda", n=4, seed=0)[0]:
    print(variant)""",
    ),
]

NOTEBOOKS["08-seq2seq-attention"] = [
    (
        M,
        """# 8. Sequence-to-sequence with attention

Notebook 5's decoder saw the source only through one vector. With Bahdanau's attention it looks
back at every encoder state at each step, and the weights it gives them form an alignment
between the French it writes and the English it reads. Same data and settings as notebook 5.""",
    ),
    (C, SETUP),
    (
        C,
        """import json

run = seqlab.train("translate", data="numbers-en-fr:5000", arch="seq2seq-attn", level="word", epochs=5,
                   output_dir=str(OUT), name="bahdanau", progress="off",
                   overrides=["model.attention=bahdanau", "model.embed_dim=64", "model.hidden_dim=128"])
translator = seqlab.load(run)
test = json.loads((run / "metrics.json").read_text())["test"]
print(f"exact match {100 * test['exact_match']:.1f}%, BLEU {test['bleu']:.1f} on {test['examples']:,} test numbers")""",
    ),
    (M, "The alignment of one translation: each row is an output word, each column a source word."),
    (
        C,
        """(item,) = translator.translate(["two hundred and eighty thousand and ninety-seven"], beam=5, return_attention=True)
print(item["translation"])
fig, ax = plt.subplots(figsize=(7, 6))
ax.imshow(item["attention"], cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(len(item["source_tokens"])), item["source_tokens"], rotation=60, ha="right")
ax.set_yticks(range(len(item["target_tokens"])), item["target_tokens"])
ax.set_xlabel("source")
ax.set_ylabel("output")
plt.show()""",
    ),
]

NOTEBOOKS["09-attention-theory"] = [
    (
        M,
        """# 9. Attention by hand

The theory behind notebooks 3 to 8, computed step by step and checked against seqlab's own
modules (`seqlab.models.attention`, `seqlab.models.transformer`).""",
    ),
    (
        C,
        """import math

import matplotlib.pyplot as plt
import torch

from seqlab.models.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from seqlab.models.transformer import SinusoidalPositions

_ = torch.manual_seed(0)""",
    ),
    (
        M,
        """## Scaled dot-product attention

Attention(Q, K, V) = softmax(QKᵀ / √d) · V: each query scores every key, the scores become
weights that sum to 1, and the output is the weighted mean of the values. Dividing by √d keeps
the scores of long vectors from saturating the softmax.""",
    ),
    (
        C,
        """tokens = ["the", "cat", "sat", "down"]
d = 8
Q, K, V = torch.randn(4, d), torch.randn(4, d), torch.randn(4, d)  # one vector per token

scores = Q @ K.T / math.sqrt(d)        # (4 queries, 4 keys)
weights = scores.softmax(dim=-1)       # each row sums to 1
output = weights @ V                   # (4, d)

ours, theirs = scaled_dot_product_attention(Q[None, None], K[None, None], V[None, None], need_weights=True)
print("rows sum to", weights.sum(-1))
print("same as seqlab:", torch.allclose(output, ours[0, 0], atol=1e-6), torch.allclose(weights, theirs[0, 0], atol=1e-6))""",
    ),
    (
        C,
        """fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
for ax, matrix, title in ((axes[0], weights, "self-attention"),
                          (axes[1], scaled_dot_product_attention(Q[None, None], K[None, None], V[None, None],
                                                                 mask=causal_mask(4, 4), need_weights=True)[1][0, 0],
                           "causal (a decoder)")):
    ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(4), tokens)
    ax.set_yticks(range(4), tokens)
    ax.set_title(title)
plt.show()""",
    ),
    (
        M,
        "A causal mask hides the future: a decoder's token attends only to itself and the tokens before it, so the upper triangle is zero.",
    ),
    (
        M,
        """## Positional encodings

Attention itself ignores order: shuffle the tokens and each output moves with its token. The
Transformer adds a vector for each position, sinusoids of geometrically spaced wavelengths:
PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).""",
    ),
    (
        C,
        """pe = SinusoidalPositions(d_model=64)(50)  # (50 positions, 64 dimensions)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
axes[0].imshow(pe.T, cmap="RdBu", aspect="auto")
axes[0].set_xlabel("position")
axes[0].set_ylabel("dimension")
similarity = pe @ pe.T
axes[1].plot(similarity[10], label="position 10 · every position")
axes[1].set_xlabel("position")
axes[1].legend()
plt.show()
perm = torch.tensor([2, 0, 3, 1])
out, _ = scaled_dot_product_attention(Q[None, None], K[None, None], V[None, None])
shuffled, _ = scaled_dot_product_attention(Q[perm][None, None], K[perm][None, None], V[perm][None, None])
print("without positions, shuffling the tokens only shuffles the outputs:", torch.allclose(out[0, 0][perm], shuffled[0, 0], atol=1e-6))""",
    ),
    (
        M,
        """## Heads

Multi-head attention runs h attentions in h subspaces of size d/h, each with its own
projections, so one head can follow syntax while another follows position; their outputs are
concatenated and mixed.""",
    ),
    (
        C,
        """mha = MultiHeadAttention(d_model=16, num_heads=4).eval()
x = torch.randn(1, 4, 16)  # (batch, tokens, d_model)
with torch.no_grad():
    out, per_head = mha(x, need_weights=True)
print("output", tuple(out.shape), "weights", tuple(per_head.shape), "= (batch, heads, queries, keys)")
fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for head, ax in enumerate(axes):
    ax.imshow(per_head[0, head], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(4), tokens)
    ax.set_yticks(range(4), tokens)
    ax.set_title(f"head {head}")
plt.show()""",
    ),
    (
        C,
        """# The same computation by hand: project, split into heads, attend in each, concatenate, mix.
with torch.no_grad():
    def heads(t):  # (1, 4, 16) → (1, 4 heads, 4 tokens, 4)
        return t.view(1, 4, 4, 4).transpose(1, 2)
    q, k, v = heads(mha.q_proj(x)), heads(mha.k_proj(x)), heads(mha.v_proj(x))
    w = (q @ k.transpose(-2, -1) / math.sqrt(4)).softmax(-1)
    by_hand = mha.out_proj((w @ v).transpose(1, 2).reshape(1, 4, 16))
print("same as seqlab's MultiHeadAttention:", torch.allclose(by_hand, out, atol=1e-6))""",
    ),
]


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    notebook = new_notebook(metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    for kind, source in cells:
        source = source.replace("{name}", name) if source == SETUP else source
        notebook.cells.append(new_markdown_cell(source) if kind == M else new_code_cell(source))
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"{name[:2]}-{number:02d}"  # stable ids: rebuilding changes nothing
    return notebook


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(build(name, cells)) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
