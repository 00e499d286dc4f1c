"""Issue 9 experiments `parallelism`, `long-range`, `positions`, `bidirectional`: the synthetic
tasks' labels, the model switches they rely on (no positions, causal encoder), and each
experiment's `--quick` run through the CLI (the shape of its output, not its verdict)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from seqlab.cli.main import app
from seqlab.experiments import synthetic
from seqlab.models.rnn import RNNClassifier
from seqlab.models.tagger import TransformerTagger
from seqlab.models.transformer import TransformerClassifier, TransformerEncoder

# --------------------------------------------------------------------------- synthetic tasks


def test_long_range_label_is_the_first_token_and_distractors_include_values():
    ids, labels = synthetic.long_range(500, k=7, num_classes=4, num_distractors=8, seed=3)
    assert ids.shape == (500, 8) and labels.shape == (500,)
    assert torch.equal(labels, ids[:, 0] - 1)
    assert int(ids.min()) >= 1 and int(ids.max()) <= synthetic.long_range_vocab(4, 8) - 1  # never padding
    # values (1..4) also appear after the first position, so presence alone does not give the label
    assert bool(((ids[:, 1:] >= 1) & (ids[:, 1:] <= 4)).any())
    assert set(labels.tolist()) == {0, 1, 2, 3}
    again, _ = synthetic.long_range(500, k=7, num_classes=4, num_distractors=8, seed=3)
    assert torch.equal(ids, again)  # seeded
    with pytest.raises(ValueError, match="k must be"):
        synthetic.long_range(4, k=0)


def test_which_first_holds_each_marker_once_and_labels_their_order():
    ids, labels = synthetic.which_first(400, length=9, vocab_size=12, seed=1)
    assert ids.shape == (400, 9)
    assert torch.equal((ids == synthetic.MARK_A).sum(1), torch.ones(400, dtype=torch.long))
    assert torch.equal((ids == synthetic.MARK_B).sum(1), torch.ones(400, dtype=torch.long))
    first_a = (ids == synthetic.MARK_A).long().argmax(1)
    first_b = (ids == synthetic.MARK_B).long().argmax(1)
    assert torch.equal(labels, (first_a < first_b).long())
    assert 0.35 < labels.float().mean() < 0.65  # both classes, about equally
    # reversing a row flips its label: the classes differ only by order
    reversed_a = (ids.flip(1) == synthetic.MARK_A).long().argmax(1)
    reversed_b = (ids.flip(1) == synthetic.MARK_B).long().argmax(1)
    assert torch.equal((reversed_a < reversed_b).long(), 1 - labels)


def test_next_word_tags_are_the_group_of_the_following_word():
    ids, tags = synthetic.next_word_tags(50, length=6, num_groups=4, vocab_size=17, seed=2)
    assert ids.shape == tags.shape == (50, 6)
    for row_ids, row_tags in zip(ids.tolist(), tags.tolist()):
        for i in range(5):
            assert row_tags[i] == (row_ids[i + 1] - 1) % 4
        assert row_tags[5] == 4  # "end"


def test_random_rows_and_matched_width():
    ids, labels = synthetic.random_rows(8, 20, vocab_size=10, num_classes=3)
    assert ids.shape == (8, 20) and labels.shape == (8,)
    assert int(ids.min()) >= 1 and int(ids.max()) <= 9 and int(labels.max()) <= 2

    def build(width: int) -> torch.nn.Module:
        return torch.nn.Linear(width, width)  # width² + width parameters

    widths = range(2, 60, 2)
    target = 1000
    best = min(widths, key=lambda w: abs(w * w + w - target))
    assert synthetic.matched_width(build, target, widths) == best


def test_train_synthetic_fits_a_trivial_task():
    """One token decides the label: a few dozen steps must get the loop far above chance."""
    ids, labels = synthetic.long_range(256, k=1, num_classes=4, seed=0)
    torch.manual_seed(0)
    model = TransformerClassifier(
        synthetic.long_range_vocab(4), 4, d_model=16, num_heads=2, num_layers=1, ff_dim=32, dropout=0.0, max_len=2, pooling="cls"
    )
    forward = lambda m, x: m(x, synthetic.all_real(x)).logits  # noqa: E731
    synthetic.train_synthetic(model, forward, ids, labels, steps=60, lr=5e-3)
    assert synthetic.accuracy(model, forward, ids, labels) > 0.9


# --------------------------------------------------------------------------- model switches the experiments use


def test_encoder_without_positions_ignores_order():
    torch.manual_seed(0)
    model = TransformerClassifier(
        20, 2, d_model=16, num_heads=2, num_layers=2, ff_dim=32, dropout=0.0, positional="none", max_len=8, pooling="mean"
    ).eval()
    ids = torch.randint(1, 20, (3, 8))
    mask = torch.ones_like(ids, dtype=torch.bool)
    shuffled = ids[:, torch.randperm(8)]
    torch.testing.assert_close(model(ids, mask).logits, model(shuffled, mask).logits)
    sinusoidal = TransformerClassifier(
        20, 2, d_model=16, num_heads=2, num_layers=2, ff_dim=32, dropout=0.0, max_len=8, pooling="mean"
    ).eval()
    assert not torch.allclose(sinusoidal(ids, mask).logits, sinusoidal(ids.flip(1), mask).logits)


def test_causal_encoder_never_reads_later_tokens():
    torch.manual_seed(0)
    ids = torch.randint(1, 20, (2, 6))
    changed = ids.clone()
    changed[:, 4:] = (changed[:, 4:] % 19) + 1  # different words at positions 4 and 5
    mask = torch.ones_like(ids, dtype=torch.bool)
    for causal in (True, False):
        encoder = TransformerEncoder(20, 16, 2, 2, 32, 0.0, causal=causal).eval()
        before = encoder(encoder.embedding(ids), mask)[0]
        after = encoder(encoder.embedding(changed), mask)[0]
        assert torch.allclose(before[:, :4], after[:, :4]) == causal  # positions 0..3 see 4..5 only without the mask
    tagger = TransformerTagger(20, 3, d_model=16, num_heads=2, num_layers=1, ff_dim=32, causal=True)
    assert tagger.encoder.causal


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("pooling", ["last", "max"])
def test_rnn_without_padding_skips_packing_with_the_same_logits(cell: str, pooling: str):
    """Rows without padding run unpacked (fast on CPU); a padded row in the batch forces the
    packed path: the full rows must score the same either way, both directions included."""
    torch.manual_seed(0)
    model = RNNClassifier(30, 3, cell, 8, 8, num_layers=2, bidirectional=True, pooling=pooling, dropout=0.0).eval()
    ids = torch.randint(1, 30, (4, 7))
    padded = torch.cat([ids, torch.tensor([[5, 6, 0, 0, 0, 0, 0]])])
    unpacked = model(ids, ids != 0).logits
    packed = model(padded, padded != 0).logits[:4]
    torch.testing.assert_close(unpacked, packed)


# --------------------------------------------------------------------------- each experiment's --quick through the CLI

EXPECTED = {  # name → (columns, rows of the quick run, plot files)
    "parallelism": (7, 2 * 5, ["parallelism.png"]),
    "long-range": (6, 2 * 3, ["accuracy_vs_distance.png"]),
    "positions": (5, 3, ["positions.png"]),
    "bidirectional": (6, 2, ["accuracy_by_position.png"]),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_quick_experiment_writes_its_table_and_plot(name: str, tmp_path: Path):
    columns, rows, plots = EXPECTED[name]
    result = CliRunner().invoke(app, ["experiment", name, "--quick", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert saved["name"] == name
    assert len(saved["columns"]) == columns
    assert len(saved["rows"]) == rows and all(len(row) == columns for row in saved["rows"])
    assert saved["verdict"]
    for plot in plots:
        assert (tmp_path / plot).stat().st_size > 1000
    table = (tmp_path / "table.md").read_text(encoding="utf-8")
    assert table.startswith("| " + saved["columns"][0]) and table.count("\n|") >= rows + 1
    assert saved["columns"][0] in result.output
