"""The papers' numbers on the field's benchmarks, beside seqlab's own.

One small table, keyed by (dataset, protocol, entry): an entry is a `seqlab compare` architecture
or recipe (`cnn`, `cnn+glove`, `minilm`) or a named tagger/LM recipe (`bilstm-crf+char-cnn`,
`lstm`). A number is listed only where the paper used the same data and the same protocol
(the same splits, the same metric), so the column compares like with like; the note says where
seqlab's recipe still differs (vectors, labels, sizes).

    >>> published("trec", "test", "cnn")
    Published(score=91.2, metric='accuracy', paper='Kim 2014', ...)

Protocols: `test` (the standard held-out test set), `cv10` (10-fold cross-validation).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One paper's number: `score` in percent (accuracy, F1) or perplexity.

    Attributes:
        score: the paper's number.
        metric: what it measures (accuracy, f1, perplexity).
        paper: short citation ("Kim 2014").
        model: the paper's name for the model ("CNN-non-static").
        note: how seqlab's recipe differs, if it does.
    """

    score: float
    metric: str
    paper: str
    model: str
    note: str = ""


KIM = "Kim 2014"
KIM_REF = "Y. Kim, Convolutional Neural Networks for Sentence Classification, EMNLP 2014 (Table 2)"
LAMPLE_REF = "G. Lample et al., Neural Architectures for Named Entity Recognition, NAACL 2016 (Table 1)"
MA_HOVY_REF = "X. Ma and E. Hovy, End-to-end Sequence Labeling via Bi-directional LSTM-CNNs-CRF, ACL 2016 (Table 4)"
MERITY_REF = "S. Merity et al., Regularizing and Optimizing LSTM Language Models, arXiv:1708.02182, 2017 (Table 2)"
REFERENCES = {KIM: KIM_REF, "Lample et al. 2016": LAMPLE_REF, "Ma & Hovy 2016": MA_HOVY_REF, "Merity et al. 2017": MERITY_REF}

_W2V = "the paper's vectors are word2vec 300-d (Google News); seqlab's are {vectors}"
_MR = (
    "seqlab's rt-polarity holds 10,568 of MR's 10,662 sentences, labelled by the sign of VADER's human "
    "scores rather than Pang & Lee's labels: the same sentences, close but not the same labels"
)


def _kim(dataset: str, protocol: str, rand: float, static: float, non_static: float, extra: str = "") -> dict:
    """Kim's three CNNs on one dataset, under every seqlab entry that builds the same model."""

    def vectors(name: str) -> str:
        return "; ".join(filter(None, [_W2V.format(vectors=name), extra]))

    return {
        (dataset, protocol, "cnn"): Published(rand, "accuracy", KIM, "CNN-rand", extra),
        (dataset, protocol, "cnn-rand"): Published(rand, "accuracy", KIM, "CNN-rand", extra),
        (dataset, protocol, "cnn+glove-static"): Published(static, "accuracy", KIM, "CNN-static", vectors("GloVe 6B 50-d")),
        (dataset, protocol, "cnn+glove"): Published(non_static, "accuracy", KIM, "CNN-non-static", vectors("GloVe 6B 50-d")),
        (dataset, protocol, "cnn+spacy-md-static"): Published(static, "accuracy", KIM, "CNN-static", vectors("spaCy md 300-d")),
        (dataset, protocol, "cnn+spacy-md"): Published(non_static, "accuracy", KIM, "CNN-non-static", vectors("spaCy md 300-d")),
    }


_CONLL_CHARS = "the paper's GloVe vectors are 100-d; seqlab's 50-d"
PUBLISHED: dict[tuple[str, str, str], Published] = {
    **_kim("trec", "test", 91.2, 92.8, 93.6),
    **_kim("rt-polarity", "cv10", 76.1, 81.0, 81.5, _MR),
    ("conll2003", "test", "bilstm-crf+char-lstm"): Published(
        90.94,
        "f1",
        "Lample et al. 2016",
        "LSTM-CRF (char BiLSTM, pretrained skip-n-gram 100-d)",
        "the paper's word vectors are skip-n-gram 100-d trained on Gigaword; seqlab's GloVe 6B 50-d",
    ),
    ("conll2003", "test", "bilstm-crf+char-cnn"): Published(
        91.21, "f1", "Ma & Hovy 2016", "BLSTM-CNN-CRF (GloVe 100-d)", _CONLL_CHARS
    ),
    ("wikitext-2", "test", "lstm"): Published(
        65.8,
        "perplexity",
        "Merity et al. 2017",
        "AWD-LSTM (3 layers, 24M parameters, many GPU-hours)",
        "AWD-LSTM adds weight-dropped, variational and embedding dropout, NT-ASGD and 750 epochs",
    ),
}


def published(dataset: str, protocol: str, entry: str) -> Published | None:
    """The paper's number for `entry` on `dataset` under `protocol`, or None where no paper
    reports the same protocol."""
    return PUBLISHED.get((dataset, protocol, entry))


def classify_protocol(cv: int | None) -> str | None:
    """`seqlab compare classify`'s protocol name: `test` (held-out split), `cv10`; None for any
    other k (no paper to compare with)."""
    if not cv:
        return "test"
    return "cv10" if cv == 10 else None


def citations(entries: list[Published]) -> list[str]:
    """The full references of the papers behind `entries`, each once, in order."""
    return [REFERENCES[paper] for paper in dict.fromkeys(e.paper for e in entries)]
