import torch

from seqlab.data.batching import BucketBatchSampler, pad_batch
from seqlab.data.tokenize import encode, train_tokenizer


def test_pad_batch_masks_real_tokens():
    ids, mask = pad_batch([[1, 2, 3], [4]])
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


def test_bucketing_covers_every_index_once_and_cuts_padding():
    lengths = [(i * 37) % 50 + 1 for i in range(1000)]
    bucketed = list(BucketBatchSampler(lengths, 32, seed=1))
    plain = list(BucketBatchSampler(lengths, 32, seed=1, bucket=False))
    assert sorted(i for b in bucketed for i in b) == list(range(1000))

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(bucketed) < 0.7 * padded(plain)


def test_sampler_is_reproducible_and_changes_per_epoch():
    a, b = BucketBatchSampler([3] * 100, 10, seed=4), BucketBatchSampler([3] * 100, 10, seed=4)
    first = list(a)
    assert first == list(b) and list(a) != first


def test_tokenizer_levels_and_truncation():
    texts = ["I love this course", "This class is boring"]
    for level in ("word", "char", "bpe"):
        tok = train_tokenizer(texts, level, vocab_size=100)
        assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("[UNK]") == 1
    word = train_tokenizer(texts, "word")
    ids, truncated = encode(word, ["I love this course a lot", "unknown"], max_length=3)
    assert truncated == 1 and len(ids[0]) == 3 and ids[1] == [1]
    assert torch.tensor(ids[0]).min() > 1
