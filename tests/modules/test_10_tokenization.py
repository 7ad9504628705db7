"""Module 10 Tokenization, graded through the exported package `tinytorch.core.tokenization`."""

import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytorch.core import tokenization
from tinytorch.core.tensor import Tensor
from tinytorch.core.tokenization import (
    BPE_FORMAT_VERSION,
    BPETokenizer,
    CharTokenizer,
    Tokenizer,
    encode_chunk,
    get_pair_counts,
    merge_pair,
    pad_batch,
    pretokenize,
    read_tokenizer_file,
    train_bpe,
)

FAST = settings(max_examples=40, deadline=None)
EOT = "<|endoftext|>"
CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 30 + "café naïve déjà vu, 日本語のテキスト, emoji 🙂🙂👍 and snake_case_names 2024 " * 10


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer().train(CORPUS, vocab_size=360, special_tokens=[EOT])


def reference_merge(ids, pair, new_id):
    """Independent left-to-right merge, for checking the package's."""
    out, i = [], 0
    while i < len(ids):
        if tuple(ids[i : i + 2]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def reference_train(text, vocab_size):
    """The obvious BPE trainer: recount every pair of every distinct chunk after each merge."""
    words = dict(Counter(tuple(chunk.encode("utf-8")) for chunk in pretokenize(text)))
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter()
        for word, frequency in words.items():
            for pair in zip(word, word[1:]):
                counts[pair] += frequency
        if not counts:
            break
        best = max(counts.values())
        pair = min(p for p, count in counts.items() if count == best)
        merges.append(pair)
        words = {tuple(reference_merge(list(word), pair, new_id)): f for word, f in words.items()}
    return merges


# ---- padding and the Tokenizer interface ------------------------------------------------------
@FAST
@given(sequences=st.lists(st.lists(st.integers(0, 1000), max_size=6), max_size=5),
       pad_id=st.integers(-1, 5), max_length=st.one_of(st.none(), st.integers(1, 7)))
def test_pad_batch_matches_a_row_by_row_reference(sequences, pad_id, max_length):
    batch = pad_batch(sequences, pad_id=pad_id, max_length=max_length)
    cut = [s[:max_length] if max_length else s for s in sequences]
    length = max_length or max((len(s) for s in cut), default=0)
    expected = np.full((len(cut), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(cut), length), dtype=bool)
    for row, sequence in enumerate(cut):
        expected[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = True
    assert batch.input_ids.dtype == np.int64 and batch.attention_mask.dtype == np.bool_
    np.testing.assert_array_equal(batch.input_ids.numpy(), expected)
    np.testing.assert_array_equal(batch.attention_mask.numpy(), mask)


def test_pad_batch_matches_torch_pad_sequence(torch):
    sequences = [[3, 1, 4, 1, 5], [9, 2], [6, 5, 3]]
    ours = pad_batch(sequences, pad_id=-7).input_ids.numpy()
    theirs = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sequences], batch_first=True, padding_value=-7)
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_pad_batch_rejects_a_zero_max_length():
    with pytest.raises(ValueError, match="max_length"):
        pad_batch([[1]], max_length=0)


def test_encode_batch_pads_truncates_and_refuses_a_single_string():
    tokenizer = CharTokenizer("abcd")
    batch = tokenizer.encode_batch(["abc", "d"], pad_id=9)
    assert batch.input_ids.numpy().tolist() == [[0, 1, 2], [3, 9, 9]]
    assert batch.attention_mask.numpy().tolist() == [[True, True, True], [True, False, False]]
    assert tokenizer.encode_batch(["abcd", "a"], max_length=2).input_ids.numpy().tolist() == [[0, 1], [0, 0]]
    with pytest.raises(TypeError, match="list of texts"):
        tokenizer.encode_batch("abc")


def test_the_base_class_names_what_a_subclass_must_write():
    class Half(Tokenizer):
        pass

    with pytest.raises(NotImplementedError, match="Half.encode"):
        Half().encode("x")
    with pytest.raises(NotImplementedError, match="Half.decode"):
        Half().decode([0])


# ---- CharTokenizer ------------------------------------------------------------------------------
def test_char_tokenizer_from_text_uses_sorted_distinct_characters():
    text = "hello, world\n"
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.itos == sorted(set(text)) and tokenizer.vocab_size == len(set(text))
    assert tokenizer.stoi == {c: i for i, c in enumerate(sorted(set(text)))}
    assert tokenizer.encode(text) == [tokenizer.stoi[c] for c in text]


def test_char_tokenizer_from_a_list_or_a_string():
    assert CharTokenizer(["x", "y", "é"]).encode("éyx") == [2, 1, 0]
    assert CharTokenizer("xyé").encode("éyx") == [2, 1, 0]
    assert CharTokenizer([]).encode("") == [] and CharTokenizer([]).vocab_size == 0


@FAST
@given(text=st.text())
def test_char_tokenizer_round_trips_any_text_it_was_built_from(text):
    tokenizer = CharTokenizer.from_text(text)
    ids = tokenizer.encode(text)
    assert len(ids) == len(text) and all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == text


VOCAB = list("abc xyz\n\t.,!?") + ["é", "ß", "日", "本", "🙂", "👍", "\x00"]


@FAST
@given(text=st.text(alphabet=VOCAB))
def test_char_tokenizer_round_trips_text_over_its_vocabulary(text):
    tokenizer = CharTokenizer(VOCAB)
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_unknown_character_error_names_character_code_point_position_and_fix():
    tokenizer = CharTokenizer("abc ")
    with pytest.raises(ValueError) as error:
        tokenizer.encode("a cab é 🙂")
    message = str(error.value)
    assert "CharTokenizer.encode" in message and "'é'" in message and "U+00E9" in message
    assert "position 6" in message and "1 more" in message
    assert "from_text" in message and "unk_token" in message


def test_unknown_characters_map_to_the_documented_unk_token():
    tokenizer = CharTokenizer("abc", unk_token="<unk>")
    assert tokenizer.vocab_size == 4 and tokenizer.unk_id == 3
    ids = tokenizer.encode("aé🙂\U0010FFFFb")  # code points beyond the table's range too
    assert ids == [0, 3, 3, 3, 1]
    assert tokenizer.decode(ids) == "a<unk><unk><unk>b"


@pytest.mark.parametrize("vocab,unk,fragment", [
    (["a", "a"], None, "more than once"),
    (["ab"], None, "one character"),
    (["a", 5], None, "one character"),
    ("ab", "", "unk_token"),
])
def test_bad_char_vocabularies_are_explained(vocab, unk, fragment):
    with pytest.raises(ValueError, match=fragment):
        CharTokenizer(vocab, unk_token=unk)


def test_char_decode_rejects_ids_outside_the_vocabulary():
    tokenizer = CharTokenizer("abc")
    for bad, position in (([0, 3], 1), ([-1], 0)):
        with pytest.raises(ValueError) as error:
            tokenizer.decode(bad)
        assert f"id {bad[position]} at position {position}" in str(error.value) and "0..2" in str(error.value)
    with pytest.raises(ValueError, match="1-D"):
        tokenizer.decode([[0, 1]])
    with pytest.raises(TypeError, match="integers"):
        tokenizer.decode([0.5])
    with pytest.raises(TypeError, match="str"):
        tokenizer.encode(b"abc")


def test_decode_accepts_a_tensor_row_and_a_numpy_array():
    tokenizer = CharTokenizer("abc")
    assert tokenizer.decode(Tensor(np.array([2, 1, 0]))) == "cba"
    assert tokenizer.decode(np.array([0, 0], dtype=np.int32)) == "aa"


# ---- pre-tokenisation ---------------------------------------------------------------------------
@FAST
@given(text=st.text())
def test_chunks_always_join_back_into_the_text(text):
    chunks = pretokenize(text)
    assert "".join(chunks) == text and all(chunks)


def test_chunks_are_words_with_their_leading_space_digits_and_punctuation():
    assert pretokenize("I'll pay 100 pounds, sir!") == ["I", "'ll", " pay", " 100", " pounds", ",", " sir", "!"]
    assert pretokenize("x  y") == ["x", " ", " y"]
    assert pretokenize("snake_case") == ["snake", "_", "case"]
    assert pretokenize("über 日本") == ["über", " 日本"]


# ---- counting and merging -----------------------------------------------------------------------
def test_pair_counts_are_weighted_by_chunk_frequency():
    counts = get_pair_counts({(1, 2, 3): 4, (2, 3): 1, (5,): 7})
    assert counts == Counter({(1, 2): 4, (2, 3): 5})


@FAST
@given(ids=st.lists(st.integers(0, 3), max_size=12), pair=st.tuples(st.integers(0, 3), st.integers(0, 3)))
def test_merge_pair_matches_a_reference_and_leaves_no_occurrence(ids, pair):
    merged = merge_pair(ids, pair, 99)
    assert merged == reference_merge(ids, pair, 99)
    assert pair not in set(zip(merged, merged[1:]))


# ---- training -----------------------------------------------------------------------------------
def test_first_merges_are_the_most_frequent_pairs_of_the_worked_example():
    a, b, c, d = (ord(x) for x in "abcd")
    merges = train_bpe("aaabdaaabac", vocab_size=259)
    assert merges == [(a, a), (a, b), (256, 257)]  # aa (4 times), then ab (ties with Za: smaller pair), then ZY
    assert BPETokenizer(merges).encode("aaabdaaabac") == [258, d, 258, a, c]


def test_pairs_are_counted_over_chunk_frequencies():
    # chunks: "hug" x1, " hug" x2, " pug" x1 -> (u, g) occurs 4 times, (h, u) 3 times
    u, g, h = ord("u"), ord("g"), ord("h")
    assert train_bpe("hug hug hug pug", vocab_size=258) == [(u, g), (h, 256)]


@FAST
@given(text=st.text(alphabet="ab c\nd", max_size=60), vocab_size=st.integers(256, 290))
def test_incremental_training_learns_the_same_merges_as_recounting(text, vocab_size):
    assert train_bpe(text, vocab_size) == reference_train(text, vocab_size)


def test_incremental_training_matches_recounting_on_real_looking_text():
    assert train_bpe(CORPUS, 330) == reference_train(CORPUS, 330)


def test_merges_never_cross_chunk_boundaries():
    merges = train_bpe("ab ab ab. ab!", vocab_size=300)
    tokenizer = BPETokenizer(merges)
    for token in range(256, tokenizer.vocab_size):
        piece = tokenizer.token_bytes[token].decode("utf-8")
        assert pretokenize(piece) == [piece], f"token {piece!r} spans two chunks"


def test_training_stops_early_when_no_pair_is_left():
    tokenizer = BPETokenizer().train("ab ab ab", vocab_size=1000, special_tokens=[EOT])
    assert len(tokenizer.merges) == 2 and tokenizer.vocab_size == 259
    assert tokenizer.special_tokens == {EOT: 258}


def test_too_small_a_vocabulary_is_explained():
    with pytest.raises(ValueError) as error:
        train_bpe("text", vocab_size=256, special_tokens=[EOT])
    assert "vocab_size 256" in str(error.value) and "257" in str(error.value)
    with pytest.raises(TypeError, match="str"):
        train_bpe(b"bytes", 300)


def test_special_tokens_are_not_learned_from_the_training_text():
    text = f"one{EOT}two{EOT}" * 50
    tokenizer = BPETokenizer().train(text, vocab_size=300, special_tokens=[EOT])
    learned = [tokenizer.token_bytes[i] for i in range(256, 256 + len(tokenizer.merges))]
    assert all(b"<|" not in piece and b"|>" not in piece for piece in learned)


def test_more_merges_give_fewer_tokens_on_repetitive_text():
    counts = [len(BPETokenizer().train(CORPUS, size).encode(CORPUS)) for size in (256, 280, 320, 400)]
    assert counts[0] == len(CORPUS.encode("utf-8"))
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 4, counts
    assert counts[-1] < counts[0] / 3


# ---- encoding and decoding ----------------------------------------------------------------------
def test_encode_applies_merges_by_rank():
    a, b, c = (ord(x) for x in "abc")
    merge_ids = {(b, c): 256, (a, b): 257}
    assert encode_chunk(b"abc", merge_ids) == [a, 256], "(b, c) was learned first, so it wins"
    assert BPETokenizer([(b, c), (a, b)]).encode("abc") == [a, 256]
    assert BPETokenizer([(a, b), (b, c)]).encode("abc") == [256, c]


@FAST
@given(text=st.text())
def test_bpe_round_trips_any_text(trained, text):
    ids = trained.encode(text)
    assert all(0 <= i < trained.vocab_size for i in ids)
    assert trained.decode(ids) == text


@FAST
@given(text=st.text())
def test_untrained_bpe_is_plain_utf8_bytes(text):
    tokenizer = BPETokenizer()
    assert tokenizer.vocab_size == 256
    assert tokenizer.encode(text) == list(text.encode("utf-8"))
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_encoding_is_the_same_chunk_by_chunk_and_repeatable(trained):
    text = "Speak, speak. Before we proceed, café 🙂"
    whole = trained.encode(text)
    assert whole == [i for chunk in pretokenize(text) for i in trained.encode(chunk)]
    assert trained.encode(text) == whole, "a second (cached) encoding must agree"
    assert trained.tokenize("Speak") == ["Speak"]
    assert "".join(trained.tokenize("Speak, speak.")) == "Speak, speak."


def test_non_ascii_text_is_merged_where_training_saw_it(trained):
    assert len(trained.encode("日本語")) < len("日本語".encode("utf-8"))
    assert len(trained.encode("🙂")) < 4


def test_special_tokens_are_atomic_in_encode_and_decode(trained):
    eot = trained.special_tokens[EOT]
    assert eot == trained.vocab_size - 1 == 359
    ids = trained.encode(f"Speak.{EOT}All:{EOT}")
    assert ids.count(eot) == 2 and ids[-1] == eot
    assert trained.decode(ids) == f"Speak.{EOT}All:{EOT}"
    assert trained.decode([eot]) == EOT
    plain = trained.encode(EOT, allow_special=False)
    assert eot not in plain and trained.decode(plain) == EOT


def test_longer_special_tokens_win_over_their_prefixes():
    tokenizer = BPETokenizer(special_tokens=["<|end|>", "<|end|>x"])
    assert tokenizer.encode("<|end|>x<|end|>") == [257, 256]


def test_decoding_half_a_character_gives_the_replacement_character():
    tokenizer = BPETokenizer()
    ids = tokenizer.encode("é")
    assert len(ids) == 2 and tokenizer.decode(ids[:1]) == "\ufffd"


def test_bpe_decode_rejects_ids_outside_the_vocabulary(trained):
    with pytest.raises(ValueError) as error:
        trained.decode([1, 2, 360])
    assert "id 360 at position 2" in str(error.value) and "0..359" in str(error.value)


@pytest.mark.parametrize("merges,special,fragment", [
    ([(1, 256)], [], "merge 0"),
    ([(1, 2), (1, 2)], [], "merged twice"),
    ([(1, 2, 3)], [], "merge 0"),
    ([], [""], "special tokens"),
    ([], ["<a>", "<a>"], "repeat"),
])
def test_bad_merges_and_special_tokens_are_explained(merges, special, fragment):
    with pytest.raises(ValueError, match=fragment):
        BPETokenizer(merges, special)


# ---- save and load ------------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_encodings(trained, tmp_path):
    path = tmp_path / "tokenizer.json"
    trained.save(path)
    assert os.listdir(tmp_path) == ["tokenizer.json"], "no temporary file may be left behind"
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["version"] == BPE_FORMAT_VERSION and payload["special_tokens"] == {EOT: 359}
    loaded = BPETokenizer.load(str(path))
    assert loaded.merges == trained.merges and loaded.special_tokens == trained.special_tokens
    for text in [CORPUS, "", f"naïve 🙂{EOT}déjà", "unseen words: zyzzyva quixotic"]:
        assert loaded.encode(text) == trained.encode(text)
        assert loaded.decode(loaded.encode(text)) == text


def test_a_failed_save_leaves_the_old_file_and_no_temporary(trained, tmp_path, monkeypatch):
    path = tmp_path / "tokenizer.json"
    BPETokenizer().save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)  # fails after the temporary file was written
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["tokenizer.json"]


def _valid_payload():
    return {"format": "tinytorch-bpe", "version": BPE_FORMAT_VERSION, "pattern": tokenization.PRETOKENIZE_PATTERN.pattern,
            "merges": [[97, 98]], "special_tokens": {EOT: 257}}


@pytest.mark.parametrize("content,fragment", [
    (b'{"format": "tinytorch-bpe", "merges": [[97', "not valid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8"),
    (json.dumps([1, 2]).encode(), "format"),
    (json.dumps({**_valid_payload(), "format": "gpt2"}).encode(), "'gpt2'"),
    (json.dumps({**_valid_payload(), "version": 2}).encode(), "version 2"),
    (json.dumps({**_valid_payload(), "pattern": "."}).encode(), "pattern"),
    (json.dumps({**_valid_payload(), "merges": {"a": 1}}).encode(), "merges"),
    (json.dumps({**_valid_payload(), "special_tokens": {EOT: 300}}).encode(), "special token"),
    (json.dumps({**_valid_payload(), "merges": [[97, 999]]}).encode(), "merge 0"),
])
def test_malformed_tokenizer_files_are_explained(tmp_path, content, fragment):
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        BPETokenizer.load(path)
    message = str(error.value)
    assert "broken.json" in message and fragment in message, message


def test_read_tokenizer_file_returns_the_checked_payload(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(_valid_payload()), encoding="utf-8")
    assert read_tokenizer_file(path)["merges"] == [[97, 98]]
    assert BPETokenizer.load(path).encode("ab") == [256]
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "missing.json")


def _doubling_merges(count):
    """Merges that join "aa", then that token with itself, and so on: token 256 + i is 2 ** (i + 1) bytes."""
    return [[97, 97]] + [[256 + i, 256 + i] for i in range(count - 1)]


def test_a_tokenizer_file_cannot_ask_for_unbounded_memory(tmp_path):
    import tracemalloc

    path = tmp_path / "bomb.json"
    payload = {**_valid_payload(), "merges": _doubling_merges(41), "special_tokens": {}}
    path.write_text(json.dumps(payload, separators=(",", ":")))
    assert path.stat().st_size < 700, "the whole file is a few hundred bytes; its last token would be 2 TiB"
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.json .* merge 8 \(263, 263\) makes a token of 512 bytes"):
            BPETokenizer.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"refusing it allocated {peak:,} bytes"


def test_the_longest_allowed_token_loads():
    tokenizer = BPETokenizer(_doubling_merges(8))
    assert tokenizer.token_bytes[-1] == b"a" * tokenization.MAX_TOKEN_BYTES
    assert tokenizer.decode(tokenizer.encode("a" * 256)) == "a" * 256


def test_the_vocabulary_size_is_bounded():
    merges = [(0, rank) for rank in range(tokenization.MAX_VOCAB_SIZE - 256)]  # valid pairs, one too many with EOT
    with pytest.raises(ValueError, match="MAX_VOCAB_SIZE"):
        BPETokenizer(merges, special_tokens=[EOT])


def test_deeply_nested_json_is_explained(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json .*nests too deeply"):
        BPETokenizer.load(path)


def test_save_writes_atomically_and_removes_what_a_killed_writer_left(tmp_path):
    stale = tmp_path / ".tokenizer.json.999999999.half.tmp"  # no process has this id: its writer is gone
    stale.write_bytes(b'{"format": "tinytorch-bpe", "merg')
    BPETokenizer(_doubling_merges(3)).save(tmp_path / "tokenizer.json")
    assert os.listdir(tmp_path) == ["tokenizer.json"]
    assert BPETokenizer.load(tmp_path / "tokenizer.json").merges == [tuple(pair) for pair in _doubling_merges(3)]
