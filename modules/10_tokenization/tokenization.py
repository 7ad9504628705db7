# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 10: Tokenization
#
# *Can I turn text into numbers a model can read?*
#
# A language model never sees text. It sees a sequence of integers — **token ids** — and
# learns to predict the next one. The **tokenizer** decides what one id stands for: a
# character, a byte, a word, or a piece of a word. That choice fixes three costs of every model
# built on it: how many tokens a text becomes (so how much a context window holds and how much
# attention costs), how large the embedding table is, and which texts the model can represent
# at all. In this module you build two tokenizers: one character per token (what the TinyGPT
# milestone uses), and the byte-level byte-pair encoding of GPT-2, trained on real text.
#
# ## Learning objectives
# - State the contract of a tokenizer: `encode(text) -> list[int]`, `decode(ids) -> str`, and
#   `decode(encode(text)) == text` for every text it accepts.
# - Build `CharTokenizer`, with a clear error (or a documented unknown token) for characters it
#   has never seen, and pad a batch of sequences into one `int64` tensor with a mask.
# - Explain why **byte-level** tokenizers never meet an unknown character: UTF-8 turns any text
#   into bytes, and there are only 256 of them.
# - Implement **byte-pair encoding**: training (the merge loop, counted over word frequencies
#   and updated incrementally), encoding by merge rank with a cache, special tokens, and
#   saving to JSON atomically — and loading a file that may be hostile without letting it
#   allocate unbounded memory.
# - Measure the trade-off: vocabulary size against tokens per character, embedding memory and
#   training time, on Tiny Shakespeare.
#
# ## How to work through this module
# Each step below has a short explanation, a code cell with `### BEGIN SOLUTION` /
# `### END SOLUTION` (in your edition: a `raise NotImplementedError` to replace), and a test cell
# right after it. Run the test cell; when it passes, move on. When every step passes:
#
# ```
# tito module complete 10
# ```
#
# exports your code to `tinytorch/core/tokenization.py` and grades it with
# `tests/modules/test_10_tokenization.py`.

# %% [markdown]
# ## Mathematical foundations
#
# A tokenizer over a vocabulary of $V$ tokens is a pair of maps
# $\text{encode}: \text{strings} \to \{0, \dots, V-1\}^*$ and
# $\text{decode}: \{0, \dots, V-1\}^* \to \text{strings}$ with
# $\text{decode}(\text{encode}(s)) = s$. A text of $N$ characters becomes $T$ tokens; call
# $r = T / N$ the **tokens per character**. Three costs follow from $V$ and $r$:
#
# | cost | formula | why |
# |---|---|---|
# | embedding table | $V \cdot d_{model} \cdot 4$ bytes (float32) | one learned row per token; the output layer has another $V \times d_{model}$ unless it is tied |
# | text per context window | $T_{max} / r$ characters | a model with a 64-token window sees 64 characters at $r = 1$, about 200 at $r = 0.3$ |
# | attention | $\propto T^2 = (rN)^2$ | every token attends to every earlier one (module 12) |
#
# Small $V$ means long sequences; large $V$ means short sequences but a big table whose rare rows
# are seldom trained. Subword tokenizers sit in between.
#
# **Byte-pair encoding** (BPE; Gage 1994 as data compression, Sennrich, Haddow & Birch 2016 for
# translation) *learns* the vocabulary. Start with one token per symbol; then repeat: count
# every adjacent pair of tokens, and replace the most frequent pair by a new token. On
# `aaabdaaabac`:
#
# | step | pair counts (top) | merge | sequence |
# |---|---|---|---|
# | 0 | aa: 4, ab: 2, ... | `aa` -> Z | `aaabdaaabac` |
# | 1 | ab: 2, Za: 2, ... | `ab` -> Y | `ZabdZabac` |
# | 2 | ZY: 2, ... | `ZY` -> X | `ZYdZYac` |
# | 3 | | | `XdXac` (11 symbols -> 5) |
#
# (At step 1, `ab` and `Za` tie; we break ties by the smaller pair of ids, and `a` < `Z` because
# byte tokens come first.) Each merge adds one token to the vocabulary and shortens the
# text; the list of merges, in order, *is* the tokenizer.
#
# **Byte-level** BPE (GPT-2, Radford et al. 2019) starts from the 256 byte values of the text's
# UTF-8 encoding instead of from characters. Every string is a sequence of bytes, so every
# string can be encoded — there is no unknown token — and merges learn that `é` is the two
# bytes `c3 a9` in the same way that they learn ` the`.

# %%
#| export
import json
import re
from collections import Counter, defaultdict, namedtuple
from pathlib import Path

import numpy as np

from tinytorch_base.files import write_atomic
from tinytorch.core.tensor import Tensor

# %%
# What this notebook's tests and measurements use besides (not part of the export).
import os

# %% [markdown]
# ## Step 1: the Tokenizer interface and padded batches
#
# Every tokenizer answers the same three questions: `encode(text)`, `decode(ids)` and
# `vocab_size` (how many rows the embedding table needs). The base class states them and adds
# what all tokenizers share.
#
# A model trains on **batches**, and a batch is a rectangle: texts of different lengths become
# rows of one `(batch, length)` tensor of `int64` ids. `pad_batch` fills the short rows with
# `pad_id` on the right and returns an **attention mask** (`True` where a real token sits) so
# that attention (module 12) and the loss can ignore the padding. The pad id itself is
# arbitrary — it is the mask that says which positions are real. With `max_length`, longer
# sequences are cut to their first `max_length` ids and every row gets exactly that length.
#
# Fill the rectangle without a Python loop over positions: `np.arange(length) < lengths[:, None]`
# is the mask, and assigning the concatenated sequences to `ids[mask]` writes them row by row,
# in order.

# %%
#| export
EncodedBatch = namedtuple("EncodedBatch", ["input_ids", "attention_mask"])


def pad_batch(sequences, pad_id=0, max_length=None):
    """Pad (and, with `max_length`, truncate) lists of ids into one (batch, length) int64 tensor.

    Returns `EncodedBatch(input_ids, attention_mask)`: `input_ids` is an int64 Tensor padded on
    the right with `pad_id`; `attention_mask` is a bool Tensor, True where a real token sits.

    TODO: cut each sequence to `max_length` (when given), find the row length, and fill an
          int64 array of `pad_id`s with the sequences, plus the boolean mask.
    HINT: lengths = np.array([len(s) for s in sequences]); the mask is
          np.arange(length) < lengths[:, None]; ids[mask] = np.concatenate(sequences) fills
          the rows in order (row-major). An empty batch has shape (0, length).
    """
    if max_length is not None and max_length < 1:
        raise ValueError(f"pad_batch: max_length must be at least 1, got {max_length}")
    ### BEGIN SOLUTION
    if max_length is not None:
        sequences = [sequence[:max_length] for sequence in sequences]
    lengths = np.array([len(sequence) for sequence in sequences], dtype=np.int64)
    if max_length is not None:
        length = max_length
    else:
        length = int(lengths.max()) if lengths.size else 0
    mask = np.arange(length) < lengths[:, None]
    ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    if lengths.sum():
        ids[mask] = np.concatenate([np.asarray(sequence, dtype=np.int64) for sequence in sequences])
    return EncodedBatch(Tensor(ids), Tensor(mask))
    ### END SOLUTION


def _checked_ids(ids, vocab_size, caller):
    """`ids` (a list, array or 1-D Tensor) as a list of ints, each a valid id; else a clear error."""
    array = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if array.ndim != 1:
        raise ValueError(f"{caller}: expects one sequence of ids (1-D), got shape {array.shape}; "
                         "decode a batch one row at a time")
    if array.size == 0:
        return []
    if array.dtype.kind not in "iu":
        raise TypeError(f"{caller}: ids must be integers, got dtype {array.dtype}")
    bad = np.flatnonzero((array < 0) | (array >= vocab_size))
    if bad.size:
        raise ValueError(
            f"{caller}: id {array[bad[0]]} at position {bad[0]} is outside the vocabulary "
            f"(valid ids are 0..{vocab_size - 1}); were these ids made by another tokenizer?"
        )
    return array.tolist()


class Tokenizer:
    """Text <-> token ids. Subclasses implement `encode`, `decode` and `vocab_size`."""

    def encode(self, text):
        """The token ids of `text` (a list of ints)."""
        raise NotImplementedError(f"{type(self).__name__}.encode: a Tokenizer subclass must implement encode(text)")

    def decode(self, ids):
        """The text that a list of ids stands for."""
        raise NotImplementedError(f"{type(self).__name__}.decode: a Tokenizer subclass must implement decode(ids)")

    @property
    def vocab_size(self):
        """Number of distinct ids (rows of the embedding table that reads them)."""
        raise NotImplementedError(f"{type(self).__name__}.vocab_size: a Tokenizer subclass must define it")

    def encode_batch(self, texts, pad_id=0, max_length=None):
        """Encode several texts into one padded int64 tensor and its mask (see `pad_batch`)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch: expects a list of texts; for one text use encode(text)")
        return pad_batch([self.encode(text) for text in texts], pad_id=pad_id, max_length=max_length)

    def tokenize(self, text):
        """The text of each token of `text`, to see how a tokenizer cuts it."""
        return [self.decode([token]) for token in self.encode(text)]

# %% [markdown]
# ### Test: padding a batch

# %%
def test_unit_pad_batch():
    batch = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape == (3, 3)
    assert batch.input_ids.numpy().tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert batch.attention_mask.numpy().tolist() == [[True, True, True], [True, False, False], [False] * 3]
    cut = pad_batch([[1, 2, 3, 4], [5]], pad_id=-1, max_length=2)
    assert cut.input_ids.numpy().tolist() == [[1, 2], [5, -1]]
    assert pad_batch([]).input_ids.shape == (0, 0)
    ### BEGIN HIDDEN TESTS
    assert pad_batch([[1]], max_length=3).input_ids.numpy().tolist() == [[1, 0, 0]]
    ### END HIDDEN TESTS
    print("pad_batch: ok")


test_unit_pad_batch()

# %% [markdown]
# ## Step 2: one token per character
#
# The simplest tokenizer gives every distinct character its own id. `CharTokenizer.from_text`
# takes the sorted set of the characters of a text — the same ids as nanoGPT's character-level
# Shakespeare, so results compare. A tokenizer can also be built from a vocabulary list (or a
# string: each character becomes one token).
#
# What happens with a character outside the vocabulary? Two honest answers:
#
# - **an error** (the default) that names the character, its code point and its position, and
#   says how to fix it;
# - **an unknown token**: built with `unk_token="<unk>"`, the tokenizer gets one extra id (the
#   last) and maps every unknown character to it. Decoding gives back `"<unk>"`, so such a text
#   no longer round-trips — the information is gone, which is why it is opt-in.
#
# Encoding is a lookup, and we make it a vectorised one: `text.encode("utf-32-le")` is exactly
# four bytes per character, so `np.frombuffer(..., np.uint32)` gives every character's code
# point in one call, and a table indexed by code point (`-1` for "not in the vocabulary") turns
# them all into ids at once. `self.stoi` (string to id) and `self.itos` (id to string) keep the
# names that char-rnn and nanoGPT use.

# %%
#| export
class CharTokenizer(Tokenizer):
    """One token per character: the tokenizer of char-rnn and of nanoGPT's Shakespeare model."""

    def __init__(self, vocab, unk_token=None):
        """A tokenizer whose ids are the positions of the characters of `vocab` (a list or a string).

        With `unk_token` (a string such as "<unk>"), one more id, the last, stands for every
        character outside the vocabulary; without it, such a character is an error.

        TODO: set `self.itos` (id -> string: the characters, then `unk_token` if given),
              `self.stoi` (character -> id), `self.unk_id` (the unknown token's id or None), and
              `self._table`: an int32 array indexed by code point holding each character's id
              and -1 everywhere else, one entry longer than the largest code point (that last
              -1 stands for every larger code point).
        HINT: ord(character) is its code point; np.full(size, -1, dtype=np.int32) then
              table[[ord(c) for c in chars]] = range(len(chars)).
        """
        chars = list(vocab)
        for character in chars:
            if not isinstance(character, str) or len(character) != 1:
                raise ValueError(f"CharTokenizer: every vocabulary entry must be one character, got {character!r}")
        repeated = [c for c, count in Counter(chars).items() if count > 1]
        if repeated:
            raise ValueError(f"CharTokenizer: the vocabulary lists {repeated[0]!r} more than once; "
                             "each character may have only one id")
        if unk_token is not None and (not isinstance(unk_token, str) or not unk_token):
            raise ValueError(f"CharTokenizer: unk_token must be a non-empty string or None, got {unk_token!r}")
        ### BEGIN SOLUTION
        self.itos = chars + ([unk_token] if unk_token is not None else [])
        self.stoi = {character: index for index, character in enumerate(chars)}
        self.unk_token = unk_token
        self.unk_id = len(chars) if unk_token is not None else None
        largest = max((ord(c) for c in chars), default=0)
        self._table = np.full(largest + 2, -1, dtype=np.int32)
        self._table[[ord(c) for c in chars]] = np.arange(len(chars), dtype=np.int32)
        ### END SOLUTION

    @classmethod
    def from_text(cls, text, unk_token=None):
        """A tokenizer for the distinct characters of `text`, in sorted order."""
        return cls(sorted(set(text)), unk_token=unk_token)

    @property
    def vocab_size(self):
        return len(self.itos)

    def encode(self, text):
        """One id per character of `text`.

        TODO: turn `text` into an array of code points, look them all up in `self._table`
              (code points beyond the table read its last entry, -1), then deal with the -1s:
              map them to `self.unk_id`, or, without an unknown token, raise a ValueError
              naming the first unknown character, its code point and its position.
        HINT: codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32);
              np.minimum(codes, len(table) - 1) keeps the index in range;
              np.flatnonzero(ids < 0) lists the unknown positions. Return ids.tolist().
        """
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.encode: expects a str, got {type(text).__name__}")
        ### BEGIN SOLUTION
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = self._table[np.minimum(codes, len(self._table) - 1)]
        unknown = np.flatnonzero(ids < 0)
        if unknown.size:
            if self.unk_id is None:
                position = int(unknown[0])
                character = text[position]
                others = f" (and {unknown.size - 1} more unknown characters)" if unknown.size > 1 else ""
                raise ValueError(
                    f"CharTokenizer.encode: character {character!r} (U+{ord(character):04X}) at position "
                    f"{position} is not in the vocabulary of {len(self.stoi)} characters{others}. "
                    "Build the tokenizer from text that contains it (CharTokenizer.from_text), or pass "
                    "unk_token='<unk>' to map unknown characters to one id."
                )
            ids[unknown] = self.unk_id
        return ids.tolist()
        ### END SOLUTION

    def decode(self, ids):
        """The characters of `ids` joined into a string (the unknown id gives `unk_token`).

        TODO: look each id up in `self.itos` and join the strings.
        HINT: "".join([...]) over a list is the fast way to build a long string.
        """
        ids = _checked_ids(ids, self.vocab_size, "CharTokenizer.decode")
        ### BEGIN SOLUTION
        itos = self.itos
        return "".join([itos[token] for token in ids])
        ### END SOLUTION

    def __repr__(self):
        unk = f", unk_token={self.unk_token!r}" if self.unk_token is not None else ""
        return f"CharTokenizer(vocab_size={self.vocab_size}{unk})"

# %% [markdown]
# ### Test: characters in, characters out

# %%
def test_unit_char_tokenizer():
    tokenizer = CharTokenizer.from_text("hello world")
    assert tokenizer.vocab_size == 8 and tokenizer.itos[:2] == [" ", "d"]
    ids = tokenizer.encode("hello")
    assert ids == [tokenizer.stoi[c] for c in "hello"] and tokenizer.decode(ids) == "hello"
    assert tokenizer.encode("") == [] and tokenizer.decode([]) == ""
    try:
        tokenizer.encode("help")
        raise AssertionError("'p' is not in the vocabulary: encode must refuse it")
    except ValueError as error:
        assert "'p'" in str(error) and "position 3" in str(error) and "unk_token" in str(error)
    lenient = CharTokenizer("abc", unk_token="<unk>")
    assert lenient.encode("abz") == [0, 1, 3] and lenient.decode([0, 1, 3]) == "ab<unk>"
    ### BEGIN HIDDEN TESTS
    accented = CharTokenizer.from_text("café 🙂")
    assert accented.decode(accented.encode("🙂 éfac")) == "🙂 éfac"
    ### END HIDDEN TESTS
    print("CharTokenizer: ok")


test_unit_char_tokenizer()

# %% [markdown]
# ## Step 3: bytes, and cutting text into chunks
#
# A character tokenizer trained on English has no id for `é` or `🙂`. Bytes fix that. UTF-8
# writes every Unicode character as 1 to 4 bytes: ASCII as itself, `é` as `c3 a9`, `🙂` as
# `f0 9f 99 82`. Start BPE from the 256 byte values and every text has an encoding.
#
# Before counting pairs we cut the text into **chunks** — words with their leading space,
# runs of digits, runs of punctuation, runs of whitespace — and merge only *inside* a chunk. Two
# reasons. Quality: without the cut, BPE would learn tokens like `e t` or `d.\n` that glue the
# end of one word to the start of the next, spending vocabulary on accidents of adjacency.
# Speed: a text of a million characters has only about fifteen thousand *distinct* chunks, so
# training can count each distinct chunk once, weighted by how often it occurs.
#
# The pattern below follows the shape of GPT-2's published pattern, written with Python's `re`
# (which has no `\p{L}` for "any letter": `[^\W\d_]` — a word character that is neither a digit
# nor `_` — means the same). Its alternatives cover every character, so the chunks always join
# back into the text. `\s+(?!\S)` leaves the last space of a run of spaces to the word that
# follows, so ` the` is the same chunk wherever it appears. This cell is given: read it.

# %%
#| export
PRETOKENIZE_PATTERN = re.compile(
    r"'(?:s|t|re|ve|m|ll|d)"  # English contractions: 's 't 're 've 'm 'll 'd
    r"| ?[^\W\d_]+"  # a word (letters in any script), with its leading space
    r"| ?\d+"  # a run of digits
    r"| ?(?:[^\s\w]|_)+"  # a run of punctuation and symbols
    r"|\s+(?!\S)"  # whitespace, leaving the last space to the next word
    r"|\s+"  # any other whitespace
)


def pretokenize(text):
    """Cut `text` into the chunks that BPE merges within; "".join(chunks) == text."""
    return PRETOKENIZE_PATTERN.findall(text)


def _special_pattern(special_tokens):
    """A regex that finds any special token (longest first) and keeps it when splitting."""
    if not special_tokens:
        return None
    ordered = sorted(special_tokens, key=len, reverse=True)
    return re.compile("(" + "|".join(re.escape(token) for token in ordered) + ")")

# %% [markdown]
# ### Test: chunks

# %%
def test_unit_pretokenize():
    assert pretokenize("Hello world, it's 2024!") == ["Hello", " world", ",", " it", "'s", " 2024", "!"]
    assert pretokenize("a   b\n\nc") == ["a", "  ", " b", "\n", "\n", "c"]
    text = "naïve café — 🙂 snake_case\ttab"
    assert "".join(pretokenize(text)) == text, "chunks must join back into the text"
    assert list("café".encode("utf-8")) == [99, 97, 102, 195, 169]
    print("pretokenize: ok")


test_unit_pretokenize()

# %% [markdown]
# ## Step 4: counting pairs, merging one pair
#
# Training keeps the text as a dictionary `{chunk as a tuple of ids: how often it occurs}`.
# Two small functions do all the work:
#
# - `get_pair_counts(word_counts)` counts every adjacent pair of ids, each occurrence weighted by
#   its chunk's frequency: ` the` occurring 5,000 times contributes 5,000 to `(' ', 't')`.
# - `merge_pair(ids, pair, new_id)` replaces each occurrence of `pair` in one sequence by
#   `new_id`, scanning left to right without overlaps: merging `(a, a)` in `a a a` gives
#   `Z a`, not `Z Z`.

# %%
#| export
def get_pair_counts(word_counts):
    """Counter of adjacent id pairs over `{tuple of ids: frequency}`, weighted by frequency.

    TODO: for every sequence and every adjacent pair in it, add the sequence's frequency.
    HINT: zip(ids, ids[1:]) walks the adjacent pairs of a sequence.
    """
    ### BEGIN SOLUTION
    counts = Counter()
    for ids, frequency in word_counts.items():
        for pair in zip(ids, ids[1:]):
            counts[pair] += frequency
    return counts
    ### END SOLUTION


def merge_pair(ids, pair, new_id):
    """`ids` (a list) with every occurrence of `pair` replaced by `new_id`, left to right.

    TODO: walk the list; where ids[i], ids[i + 1] equals `pair`, emit new_id and skip both,
          otherwise emit ids[i].
    HINT: a while loop with an index i that moves by 2 after a merge and by 1 otherwise.
    """
    ### BEGIN SOLUTION
    first, second = pair
    merged = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == first and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
    ### END SOLUTION

# %% [markdown]
# ### Test: the worked example's first step

# %%
def test_unit_pairs_and_merge():
    a, b, c, d = (ord(x) for x in "abcd")
    counts = get_pair_counts({tuple(b"aaabdaaabac"): 1})
    assert counts[(a, a)] == 4 and counts[(a, b)] == 2 and counts[(b, d)] == 1
    assert get_pair_counts({(1, 2): 3, (2, 1, 2): 2})[(1, 2)] == 5, "weighted by frequency"
    assert merge_pair(list(b"aaabdaaabac"), (a, a), 256) == [256, a, b, d, 256, a, b, a, c]
    assert merge_pair([a, a, a], (a, a), 256) == [256, a], "no overlapping merges"
    assert merge_pair([], (a, a), 256) == [] and merge_pair([a], (a, a), 256) == [a]
    print("pairs and merge: ok")


test_unit_pairs_and_merge()

# %% [markdown]
# ## Step 5: training — the merge loop
#
# The obvious loop recounts every pair of every chunk after each merge. With $M$ merges and a
# text of $C$ distinct chunks that is $M$ full passes — and re-scanning the raw text instead of
# the distinct chunks would be worse by the ratio of total to distinct chunks (about 20x on
# Tiny Shakespeare). But a merge changes only the chunks that contain the merged pair: `(' ',
# 't')` touches ` the`, ` to`, ` thou`, and leaves ` and` alone. So keep two dictionaries and
# update them instead of recounting:
#
# - `pair_counts`: pair -> weighted count (start from `get_pair_counts`);
# - `where`: pair -> the indices of the chunks that contain it.
#
# For each merge: pick the most frequent pair (ties: the smallest pair, so that training is
# deterministic); for each chunk in `where[pair]`, subtract the counts of its old pairs, merge,
# add the counts of its new pairs (and record the chunk under them), and drop pairs whose count
# reaches zero. `where` may list a chunk that no longer holds the pair (an earlier merge used its
# bytes); merging it changes nothing, so skip it.
#
# Special tokens such as `<|endoftext|>` mark boundaries between documents; they are cut out of
# the training text first, so that no merge ever learns a piece of one. The vocabulary is the
# 256 bytes, then the merges, then the special tokens; a text too small to supply enough pairs
# stops early with fewer merges.

# %%
#| export
def train_bpe(text, vocab_size, special_tokens=()):
    """Learn byte-level BPE merges from `text`: a list of id pairs, merge i making id 256 + i.

    The vocabulary holds 256 byte tokens, the merges, then `special_tokens`, so
    `vocab_size - 256 - len(special_tokens)` merges are learned (fewer if the text runs out of
    pairs). Ties between equally frequent pairs go to the smaller pair.

    TODO: count the chunks of the text outside special tokens; turn each distinct chunk into a
          list of byte ids; count pairs (get_pair_counts) and index which chunks hold each pair;
          then for each merge pick the best pair and update only the chunks that hold it.
    HINT: Counter(pretokenize(piece)) counts chunks; defaultdict(set) makes `where`;
          best = max(pair_counts.values()), then min(p for p, c in pair_counts.items() if c == best);
          where.pop(pair) hands you the chunks to update.
    """
    special_tokens = list(special_tokens)
    if not isinstance(text, str):
        raise TypeError(f"train_bpe: expects the training text as a str, got {type(text).__name__}")
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError(
            f"train_bpe: vocab_size {vocab_size} is too small: byte-level BPE starts with 256 byte tokens "
            f"plus {len(special_tokens)} special token(s); ask for at least {256 + len(special_tokens)}"
        )
    ### BEGIN SOLUTION
    splitter = _special_pattern(special_tokens)
    pieces = splitter.split(text)[::2] if splitter else [text]  # odd items are the special tokens
    chunk_counts = Counter()
    for piece in pieces:
        chunk_counts.update(pretokenize(piece))
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    frequencies = list(chunk_counts.values())
    pair_counts = get_pair_counts({tuple(ids): f for ids, f in zip(words, frequencies)})
    where = defaultdict(set)
    for index, ids in enumerate(words):
        for pair in zip(ids, ids[1:]):
            where[pair].add(index)

    merges = []
    for new_id in range(256, 256 + n_merges):
        if not pair_counts:
            break  # every chunk is a single token: nothing left to merge
        best = max(pair_counts.values())
        pair = min(p for p, count in pair_counts.items() if count == best)
        merges.append(pair)
        for index in where.pop(pair):
            ids, frequency = words[index], frequencies[index]
            merged = merge_pair(ids, pair, new_id)
            if len(merged) == len(ids):
                continue  # stale entry: an earlier merge already used these bytes
            old_pairs = list(zip(ids, ids[1:]))
            for old in old_pairs:
                pair_counts[old] -= frequency
            for new in zip(merged, merged[1:]):
                pair_counts[new] += frequency
                where[new].add(index)
            for old in set(old_pairs):
                if pair_counts[old] <= 0:
                    del pair_counts[old]
            words[index] = merged
    return merges
    ### END SOLUTION

# %% [markdown]
# ### Test: the worked example, merge by merge

# %%
def test_unit_train_bpe():
    a, b = ord("a"), ord("b")
    merges = train_bpe("aaabdaaabac", vocab_size=259)
    assert merges == [(a, a), (a, b), (256, 257)], f"expected aa, then ab, then (aa)(ab); got {merges}"
    # Merges stay inside chunks: in "ab ab ab" the pair ('b', ' ') is never counted.
    merges = train_bpe("ab ab ab", vocab_size=300)
    assert (b, ord(" ")) not in merges and merges[0] == (a, b)
    assert len(merges) == 2, "only 'ab' and ' ' + 'ab' can merge; training stops early"
    assert train_bpe("x<|endoftext|>x", 300, special_tokens=["<|endoftext|>"]) == []
    try:
        train_bpe("text", vocab_size=100)
        raise AssertionError("vocab_size below 256 must be refused")
    except ValueError as error:
        assert "256" in str(error)
    ### BEGIN HIDDEN TESTS
    assert train_bpe("hug hug hug pug", 257)[0] == (ord("u"), ord("g"))
    ### END HIDDEN TESTS
    print("train_bpe: ok")


test_unit_train_bpe()

# %% [markdown]
# ## Step 6: encoding a chunk — merges by rank
#
# To encode new text, replay the merges on each chunk. The order matters: training applied
# merge 0 before merge 1, so a merge's **rank** (its position in the list, which is also its id
# minus 256) decides. Repeatedly find, among the chunk's adjacent pairs, the one with the
# lowest rank, and merge it; stop when no pair is a learned merge. Applying merges in another
# order can produce a different cut, one that the model never saw in training.
#
# `merge_ids` maps each learned pair to the id it makes (`{pair: 256 + rank}`), so the lowest
# rank is simply the smallest id.

# %%
#| export
def encode_chunk(data, merge_ids):
    """The BPE ids of one chunk's bytes, applying the learned merges in rank order.

    TODO: start from the list of byte values; while two or more ids remain, take the adjacent
          pair with the smallest id in `merge_ids`; stop if it is not a learned merge, else
          merge it with merge_pair.
    HINT: min(zip(ids, ids[1:]), key=lambda p: merge_ids.get(p, float("inf"))).
    """
    ### BEGIN SOLUTION
    ids = list(data)
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merge_ids.get(p, float("inf")))
        if pair not in merge_ids:
            break
        ids = merge_pair(ids, pair, merge_ids[pair])
    return ids
    ### END SOLUTION

# %% [markdown]
# ### Test: replaying the worked example

# %%
def test_unit_encode_chunk():
    a, b, c, d = (ord(x) for x in "abcd")
    merge_ids = {(a, a): 256, (a, b): 257, (256, 257): 258}
    assert encode_chunk(b"aaabdaaabac", merge_ids) == [258, d, 258, a, c]
    assert encode_chunk(b"", merge_ids) == [] and encode_chunk(b"xyz", merge_ids) == list(b"xyz")
    # Rank decides: (a, b) has rank 1, (a, a) rank 0, so "aab" is (aa) b, not a (ab).
    assert encode_chunk(b"aab", merge_ids) == [256, b]
    print("encode_chunk: ok")


test_unit_encode_chunk()

# %% [markdown]
# ## Step 7: the BPETokenizer
#
# The class puts the pieces together. It holds the merges, the byte string of every token
# (`token_bytes[i]`: a byte token is one byte, a merged token is its pair's two strings joined,
# a special token is its UTF-8), and the special tokens with their ids.
#
# - **encode**: cut out the special tokens (they become their single id, atomically); cut the
#   rest into chunks; encode each chunk with `encode_chunk`. Real text repeats its words, so a
#   **cache** from chunk to ids makes the second ` the` free: on Tiny Shakespeare, about 300,000
#   chunks are only 15,000 distinct ones.
# - **decode**: join the byte strings of the ids and decode them as UTF-8. A slice of ids can
#   end in the middle of a multi-byte character; `errors="replace"` shows such a fragment as
#   `�` rather than failing (a whole encoding always decodes exactly).
# - `allow_special=False` encodes `<|endoftext|>` as ordinary text. Use it for text from users:
#   otherwise anyone who types the string can inject a document boundary.

# %%
#| export
_CACHE_LIMIT = 100_000  # distinct chunks remembered by encode; the cache restarts beyond this
# What a tokenizer may build, so that a file cannot ask for unbounded memory: 41 merges that each
# double the last token make a token of 2 TiB. Real vocabularies have up to ~256k tokens, and a
# token is at most one pre-tokenized chunk: a word, a number or a run of spaces or punctuation.
MAX_VOCAB_SIZE = 1 << 18  # 262,144 tokens
MAX_TOKEN_BYTES = 256  # so all the tokens together hold at most 64 MiB


class BPETokenizer(Tokenizer):
    """Byte-level byte-pair encoding (GPT-2's scheme): any Unicode text encodes and decodes exactly."""

    def __init__(self, merges=(), special_tokens=()):
        """A tokenizer from learned `merges` (merge i makes id 256 + i) and `special_tokens`
        (strings given the ids after the merges). `BPETokenizer()` knows only the 256 bytes;
        `train` learns merges."""
        self._build(merges, special_tokens)

    def _build(self, merges, special_tokens):
        """Check `merges` and `special_tokens`, then make the tables that encode and decode use.

        TODO: after the checks (given), set `self.token_bytes` (id -> bytes: the 256 single
              bytes, then for each merge the two byte strings it joins, then the UTF-8 of each
              special token), `self.merges`, `self.merge_ids` ({pair: 256 + rank}) and
              `self.special_tokens` ({token: id}, the ids right after the merges).
        HINT: bytes([value]) is a one-byte string; token_bytes[first] + token_bytes[second]
              is the token that a merge makes.
        """
        merges = [tuple(pair) for pair in merges]
        special_tokens = list(special_tokens)
        if 256 + len(merges) + len(special_tokens) > MAX_VOCAB_SIZE:
            raise ValueError(
                f"BPETokenizer: {len(merges):,} merges and {len(special_tokens):,} special tokens make more than "
                f"MAX_VOCAB_SIZE = {MAX_VOCAB_SIZE:,} tokens; train a smaller vocabulary"
            )
        for rank, pair in enumerate(merges):
            if len(pair) != 2 or not all(isinstance(i, (int, np.integer)) and 0 <= i < 256 + rank for i in pair):
                raise ValueError(
                    f"BPETokenizer: merge {rank} is {pair!r}; a merge is two ids, each a byte (0..255) "
                    f"or a token made by an earlier merge (< {256 + rank})"
                )
        merges = [(int(first), int(second)) for first, second in merges]
        # Each token's length follows from the merges alone: refuse a token too long before building any.
        lengths = [1] * 256
        for rank, (first, second) in enumerate(merges):
            lengths.append(lengths[first] + lengths[second])
            if lengths[-1] > MAX_TOKEN_BYTES:
                raise ValueError(
                    f"BPETokenizer: merge {rank} {(first, second)} makes a token of {lengths[-1]:,} bytes, more than "
                    f"MAX_TOKEN_BYTES = {MAX_TOKEN_BYTES}; merges this long are damaged or crafted to exhaust memory"
                )
        if len(set(merges)) != len(merges):
            repeated = next(pair for pair, count in Counter(merges).items() if count > 1)
            raise ValueError(f"BPETokenizer: the pair {repeated} is merged twice; each pair may be merged once")
        for token in special_tokens:
            if not isinstance(token, str) or not token:
                raise ValueError(f"BPETokenizer: special tokens must be non-empty strings, got {token!r}")
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"BPETokenizer: special tokens repeat: {special_tokens}")
        ### BEGIN SOLUTION
        token_bytes = [bytes([value]) for value in range(256)]
        for first, second in merges:
            token_bytes.append(token_bytes[first] + token_bytes[second])
        first_special = len(token_bytes)
        token_bytes += [token.encode("utf-8") for token in special_tokens]
        self.merges = merges
        self.merge_ids = {pair: 256 + rank for rank, pair in enumerate(merges)}
        self.special_tokens = {token: first_special + i for i, token in enumerate(special_tokens)}
        self.token_bytes = token_bytes
        ### END SOLUTION
        self._special_splitter = _special_pattern(special_tokens)
        self._cache = {}

    def train(self, text, vocab_size, special_tokens=()):
        """Learn merges from `text` up to `vocab_size` tokens (see `train_bpe`); returns self."""
        self._build(train_bpe(text, vocab_size, special_tokens), special_tokens)
        return self

    @property
    def vocab_size(self):
        return len(self.token_bytes)

    @property
    def vocab(self):
        """{id: the bytes that the token stands for}."""
        return dict(enumerate(self.token_bytes))

    def encode(self, text, allow_special=True):
        """The BPE ids of `text`; special tokens (when allowed) become their single id.

        TODO: split out the special tokens (when allowed and any exist); each special token
              gives its id, every other piece is cut by pretokenize and each chunk is encoded by
              encode_chunk — through `self._cache` (chunk string -> list of ids).
        HINT: self._special_splitter.split(text) alternates text, special, text, ...;
              a chunk's bytes are chunk.encode("utf-8"); clear the cache when it holds
              _CACHE_LIMIT entries.
        """
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode: expects a str, got {type(text).__name__}")
        ### BEGIN SOLUTION
        if allow_special and self._special_splitter is not None:
            pieces = self._special_splitter.split(text)
        else:
            pieces = [text]
        ids = []
        cache = self._cache
        for index, piece in enumerate(pieces):
            if index % 2 == 1:
                ids.append(self.special_tokens[piece])
                continue
            for chunk in pretokenize(piece):
                chunk_ids = cache.get(chunk)
                if chunk_ids is None:
                    chunk_ids = encode_chunk(chunk.encode("utf-8"), self.merge_ids)
                    if len(cache) >= _CACHE_LIMIT:
                        cache.clear()
                    cache[chunk] = chunk_ids
                ids.extend(chunk_ids)
        return ids
        ### END SOLUTION

    def decode(self, ids):
        """The text of `ids`: their bytes joined and decoded as UTF-8 (fragments become U+FFFD).

        TODO: join the byte strings of the ids and decode them.
        HINT: b"".join(...).decode("utf-8", errors="replace").
        """
        ids = _checked_ids(ids, self.vocab_size, "BPETokenizer.decode")
        ### BEGIN SOLUTION
        token_bytes = self.token_bytes
        return b"".join([token_bytes[token] for token in ids]).decode("utf-8", errors="replace")
        ### END SOLUTION

    def save(self, path):
        """Write the tokenizer to `path` as JSON, atomically (`write_atomic`: never half a file)."""
        payload = {
            "format": BPE_FORMAT,
            "version": BPE_FORMAT_VERSION,
            "pattern": PRETOKENIZE_PATTERN.pattern,
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": self.special_tokens,
        }
        write_atomic(path, json.dumps(payload, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path):
        """A tokenizer read from a file that `save` wrote; a clear error if the file is not one."""
        payload = read_tokenizer_file(path)
        try:
            return cls(payload["merges"], list(payload["special_tokens"]))
        except (TypeError, ValueError) as error:
            raise ValueError(f"BPETokenizer.load: {path} holds an invalid tokenizer: {error}") from None

    def __repr__(self):
        return (f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
                f"special_tokens={list(self.special_tokens)})")

# %% [markdown]
# ### Test: round trips and special tokens

# %%
def test_unit_bpe_tokenizer():
    text = "the cat sat on the mat. the cat ate the rat. " * 20
    tokenizer = BPETokenizer().train(text, vocab_size=270, special_tokens=["<|endoftext|>"])
    assert tokenizer.vocab_size == 270 and tokenizer.special_tokens == {"<|endoftext|>": 269}
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode("utf-8")) / 2, "merges must compress repetitive text"
    for sample in ["", "naïve café 🙂", "日本語のテキスト", "tabs\tand\nnewlines  "]:
        assert tokenizer.decode(tokenizer.encode(sample)) == sample
    joined = tokenizer.encode("the cat<|endoftext|>the rat")
    assert joined.count(269) == 1 and tokenizer.decode(joined) == "the cat<|endoftext|>the rat"
    assert 269 not in tokenizer.encode("<|endoftext|>", allow_special=False)
    try:
        tokenizer.decode([0, 270])
        raise AssertionError("id 270 is outside a 270-token vocabulary")
    except ValueError as error:
        assert "270" in str(error) and "position 1" in str(error)
    ### BEGIN HIDDEN TESTS
    assert BPETokenizer().encode("hé") == list("hé".encode("utf-8"))
    assert tokenizer.tokenize("the cat") == ["the", " cat"]
    ### END HIDDEN TESTS
    print("BPETokenizer: ok")


test_unit_bpe_tokenizer()

# %% [markdown]
# ## Step 8: saving and loading
#
# A trained tokenizer is part of the model: the same weights with a different tokenizer are
# garbage. So it is saved next to the checkpoint, as JSON — readable, diffable, and, unlike a
# pickle, unable to run code when loaded. The file holds a `format` name and a `version` (so a
# future change of layout can be detected instead of misread), the pre-tokenisation pattern,
# the merges in order, and the special tokens with their ids.
#
# Three rules from the rest of the course apply:
#
# - **Never half-written.** `save` writes through `write_atomic` from `tinytorch_base.files`, the
#   writer that module 07's checkpoints use: a temporary file in the same folder, flushed to disk,
#   then renamed over the target. A crash leaves the old file or the new one, never a mix.
# - **Bad files are explained.** A truncated or foreign file raises a `ValueError` that names the
#   file and what is wrong with it, not a bare `KeyError` from deep inside `load`.
# - **A file cannot ask for unbounded memory.** A tokenizer file is small, but what it describes
#   need not be: 41 merges that each join the last token with itself fit in 600 bytes and describe
#   a token of $2^{41}$ bytes (2 TiB). `_build` computes every token's length from the merge list
#   first — a sum of two earlier lengths, no bytes built — and refuses a token longer than
#   `MAX_TOKEN_BYTES` or a vocabulary larger than `MAX_VOCAB_SIZE` before it allocates anything.

# %%
#| export
BPE_FORMAT = "tinytorch-bpe"
BPE_FORMAT_VERSION = 1


def read_tokenizer_file(path):
    """The checked contents of a BPE tokenizer file: a dict with `merges` and `special_tokens`.

    TODO: read and parse the JSON; check that it is an object with format BPE_FORMAT, version
          BPE_FORMAT_VERSION, this module's pattern, a list `merges` and an object
          `special_tokens` whose ids follow the merges (256 + len(merges), +1, ...).
          Every problem raises a ValueError naming the file and saying how to fix it.
    HINT: json.loads raises json.JSONDecodeError (it has .msg, .lineno, .colno), and
          RecursionError for brackets nested thousands deep; read the file as bytes and decode
          UTF-8 yourself so that a binary file is explained too.
    """
    def invalid(reason):
        return ValueError(f"BPETokenizer.load: {path} is not a usable tokenizer file: {reason}")

    ### BEGIN SOLUTION
    raw = Path(path).read_bytes()
    try:
        payload = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise invalid("it is not UTF-8 text (a binary file?); save the tokenizer with BPETokenizer.save") from None
    except json.JSONDecodeError as error:
        raise invalid(
            f"it is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "it may be truncated or hand-edited; save the tokenizer again with BPETokenizer.save"
        ) from None
    except RecursionError:  # brackets nested thousands deep: a tokenizer file nests three levels
        raise invalid("its JSON nests too deeply to be a tokenizer file") from None
    if not isinstance(payload, dict) or payload.get("format") != BPE_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise invalid(f"its format is {found!r}, expected {BPE_FORMAT!r}")
    if payload.get("version") != BPE_FORMAT_VERSION:
        raise invalid(f"it has version {payload.get('version')!r}; this TinyTorch reads version {BPE_FORMAT_VERSION}")
    if payload.get("pattern") != PRETOKENIZE_PATTERN.pattern:
        raise invalid("it was trained with a different pre-tokenisation pattern; retrain it with this version")
    merges, special_tokens = payload.get("merges"), payload.get("special_tokens")
    if not isinstance(merges, list) or not all(isinstance(pair, list) for pair in merges):
        raise invalid("'merges' must be a list of [id, id] pairs")
    if not isinstance(special_tokens, dict):
        raise invalid("'special_tokens' must be an object {token: id}")
    expected = {token: 256 + len(merges) + i for i, token in enumerate(special_tokens)}
    if special_tokens != expected:
        raise invalid(f"special token ids {special_tokens} must follow the merges: {expected}")
    return payload
    ### END SOLUTION

# %% [markdown]
# ### Test: save, load, and a broken file

# %%
def test_unit_save_load():
    import tempfile as scratch_space

    tokenizer = BPETokenizer().train("low lower lowest newer wider " * 10, 280, special_tokens=["<|endoftext|>"])
    with scratch_space.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.json"
        tokenizer.save(path)
        assert os.listdir(folder) == ["tokenizer.json"], "no temporary file may be left behind"
        assert json.loads(path.read_text())["version"] == BPE_FORMAT_VERSION
        loaded = BPETokenizer.load(path)
        sample = "the lowest newer<|endoftext|>wider 🙂"
        assert loaded.encode(sample) == tokenizer.encode(sample) and loaded.merges == tokenizer.merges
        path.write_text('{"format": "tinytorch-bpe", "version": 1, "merges": [[1')
        try:
            BPETokenizer.load(path)
            raise AssertionError("a truncated file must be refused")
        except ValueError as error:
            assert "tokenizer.json" in str(error) and "not valid JSON" in str(error)
        doubling = [[97, 97]] + [[256 + i, 256 + i] for i in range(40)]  # the last token: 2 TiB of "a"
        payload = {"format": BPE_FORMAT, "version": BPE_FORMAT_VERSION, "pattern": PRETOKENIZE_PATTERN.pattern,
                   "merges": doubling, "special_tokens": {}}
        path.write_text(json.dumps(payload))
        try:
            BPETokenizer.load(path)
            raise AssertionError("a tokenizer whose tokens cannot fit in memory must be refused before building them")
        except ValueError as error:
            assert "MAX_TOKEN_BYTES" in str(error) and "tokenizer.json" in str(error)
    ### BEGIN HIDDEN TESTS
    assert BPETokenizer(tokenizer.merges).encode("lowest") == tokenizer.encode("lowest")
    ### END HIDDEN TESTS
    print("save/load: ok")


test_unit_save_load()

# %% [markdown]
# ## Systems analysis: vocabulary size, sequence length, memory, time
#
# Four measurements on Tiny Shakespeare (Karpathy's char-rnn `input.txt`, 1,115,394
# characters). Train on the first 90% and measure on the last 10%, so that the tokenizers are
# judged on text they did not see:
#
# 1. **Tokens per character** for the character tokenizer, raw bytes, and BPE at several
#    vocabulary sizes.
# 2. **Embedding memory**, $V \times d_{model} \times 4$ bytes, at TinyGPT's $d_{model} = 128$
#    and GPT-2 small's 768 — and the attention cost for a fixed span of text, $\propto r^2$.
# 3. **Training time** of BPE, incremental updates against recounting every chunk after each
#    merge.
# 4. **Encoding speed**, with the chunk cache cold and warm.
#
# BPE's merges are greedy and deterministic, so the first $k$ merges of a 2048-token run are
# exactly the merges of a $(256 + k)$-token run: one training run gives every smaller
# tokenizer. When the real file is absent, the module makes a practice text of its own and says
# so.

# %%
def find_tiny_shakespeare():
    """Path of Tiny Shakespeare in the data folder ($TINYTORCH_DATA, as module 08 reads it), or None."""
    folders = []
    if os.environ.get("TINYTORCH_DATA"):
        folders.append(Path(os.environ["TINYTORCH_DATA"]))
    here = Path(__file__).resolve().parents[2] if "__file__" in globals() else Path.cwd()
    folders += [here / ".." / "shared" / "data", Path.cwd() / ".." / "shared" / "data"]
    for folder in folders:
        for candidate in (folder / "tinyshakespeare.txt", folder / "tinyshakespeare" / "input.txt"):
            if candidate.is_file():
                return candidate
    return None


def make_practice_text(n_characters=500_000, seed=0):
    """A deterministic play-like text, for when no data is present: speakers and lines of
    Zipf-distributed words (common English words, then 3,000 made-up ones built from syllables)."""
    rng = np.random.default_rng(seed)
    speakers = ["ROMEO", "JULIET", "KING HENRY", "LADY MACBETH", "FIRST CITIZEN", "MENENIUS"]
    common = ("the and I to of a you my that in is not with me it for be his your this but he have "
              "thou thy lord shall will so what love good more now king thee well come let our sir").split()
    syllables = "ro me ju li et ma be th an ce ho no ra ti us ca sta ver wil gre din for pen tra ol".split()
    made_up = {"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(3000)}
    words = np.array(common + sorted(made_up - set(common)))
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    parts, size = [], 0
    while size < n_characters:
        line = " ".join(rng.choice(words, size=rng.integers(4, 12), p=weights))
        speech = f"{rng.choice(speakers)}:\n{line[0].upper()}{line[1:]}{rng.choice(['.', ',', '!', '?', ';'])}\n\n"
        parts.append(speech)
        size += len(speech)
    return "".join(parts)[:n_characters]


def train_bpe_by_recounting(text, vocab_size):
    """Reference trainer: recount every pair of every distinct chunk after each merge (slow, simple)."""
    words = {tuple(chunk.encode("utf-8")): count for chunk, count in Counter(pretokenize(text)).items()}
    merges = []
    for new_id in range(256, vocab_size):
        counts = get_pair_counts(words)
        if not counts:
            break
        best = max(counts.values())
        pair = min(p for p, count in counts.items() if count == best)
        merges.append(pair)
        words = {tuple(merge_pair(list(ids), pair, new_id)): count for ids, count in words.items()}
    return merges


def embedding_table_bytes(vocab_size, d_model):
    """Bytes of a float32 embedding table: one d_model-vector per token."""
    return vocab_size * d_model * 4


def _seconds(function):
    import time

    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def measure_vocab_tradeoffs(train_text, test_text, vocab_sizes=(512, 1024, 2048)):
    """Rows (name, vocab, tokens per char, embedding bytes at d=128 and 768) and the training time."""
    largest, seconds = _seconds(lambda: BPETokenizer().train(train_text, max(vocab_sizes)))
    rows = []
    characters = CharTokenizer.from_text(train_text + test_text)
    candidates = [("characters", characters), ("bytes (BPE, 0 merges)", BPETokenizer())]
    candidates += [(f"BPE {size}", BPETokenizer(largest.merges[: size - 256])) for size in vocab_sizes]
    for name, tokenizer in candidates:
        tokens = len(tokenizer.encode(test_text))
        rows.append((name, tokenizer.vocab_size, tokens / len(test_text),
                     embedding_table_bytes(tokenizer.vocab_size, 128), embedding_table_bytes(tokenizer.vocab_size, 768)))
    return rows, seconds, largest


def measure_training(text, vocab_size=512):
    """Seconds to train to `vocab_size`: incremental updates against recounting (same merges)."""
    fast, fast_seconds = _seconds(lambda: train_bpe(text, vocab_size))
    slow, slow_seconds = _seconds(lambda: train_bpe_by_recounting(text, vocab_size))
    assert fast == slow, "both trainers must learn the same merges"
    return fast_seconds, slow_seconds


def measure_encoding(tokenizer, text):
    """Seconds to encode `text` with a cold cache and then again with a warm one."""
    tokenizer._cache.clear()
    _, cold = _seconds(lambda: tokenizer.encode(text))
    _, warm = _seconds(lambda: tokenizer.encode(text))
    return cold, warm


if __name__ == "__main__":
    source = find_tiny_shakespeare()
    if source is not None:
        corpus = source.read_text(encoding="utf-8")
        print(f"text: Tiny Shakespeare from {source} ({len(corpus):,} characters)")
    else:
        corpus = make_practice_text()
        print(f"text: Tiny Shakespeare not found (set TINYTORCH_DATA); using a practice text the module "
              f"makes itself ({len(corpus):,} characters): figures differ from the real ones")
    split = int(0.9 * len(corpus))
    train_text, test_text = corpus[:split], corpus[split:]

    rows, seconds, bpe_2048 = measure_vocab_tradeoffs(train_text, test_text)
    print(f"\ntrained BPE to 2048 tokens on {len(train_text.encode()) / 1e6:.2f} MB in {seconds:.2f} s; "
          "measured on the held-out 10%:")
    print(f"{'tokenizer':>22} {'vocab':>6} {'tokens/char':>12} {'attention cost':>19} "
          f"{'table d=128':>12} {'table d=768':>12}")
    for name, vocab, ratio, small, large in rows:
        print(f"{name:>22} {vocab:>6} {ratio:>12.3f} {ratio ** 2:>18.2f}x "
              f"{small / 2**10:>9.0f} KiB {large / 2**20:>8.2f} MiB")
    print(f"{'GPT-2 (published)':>22} {50257:>6} {'':>12} {'':>19} "
          f"{embedding_table_bytes(50257, 128) / 2**20:>8.1f} MiB {embedding_table_bytes(50257, 768) / 2**20:>8.1f} MiB")
    print("first merges:", [bpe_2048.decode([256 + i]) for i in range(12)])
    print("tokens of a line:", bpe_2048.tokenize("ROMEO:\nWherefore art thou Romeo?"))

    fast, slow = measure_training(train_text[:100_000], 512)
    print(f"\ntraining to 512 tokens on 100 KB: incremental {fast:.2f} s, recounting {slow:.2f} s "
          f"({slow / fast:.1f}x), same merges")
    _, seconds_512 = _seconds(lambda: train_bpe(train_text, 512))
    print(f"training to 512 tokens on {len(train_text.encode()) / 1e6:.2f} MB: {seconds_512:.2f} s")
    cold, warm = measure_encoding(bpe_2048, corpus)
    print(f"encoding {len(corpus.encode()) / 1e6:.2f} MB with BPE 2048: {cold:.2f} s with a cold cache "
          f"({len(corpus) / cold / 1e6:.1f} M chars/s), {warm:.2f} s warm")
    characters = CharTokenizer.from_text(corpus)
    _, char_seconds = _seconds(lambda: characters.encode(corpus))
    print(f"encoding it with CharTokenizer: {char_seconds * 1e3:.0f} ms")

# %% [markdown]
# Measured here (`python modules/10_tokenization/tokenization.py`, 2 shared CPU cores): the
# character tokenizer has 65 tokens and exactly one token per character; raw bytes are the same
# (the text is ASCII). On the held-out 10%, BPE needs 0.53 tokens per character at 512 tokens,
# 0.44 at 1024 and 0.39 at 2048 — a 64-token context holds 2.6 times as much text, and attention
# over a fixed span of text costs 0.15x as much. The price is the table: 2048 x 128 floats is
# 1 MiB against 32 KiB for characters, and GPT-2's 50,257 tokens at $d_{model} = 768$ take
# 147 MiB — about a third of GPT-2 small's 124 million parameters sit in its embedding table.
# Training to 512 tokens on the 1.0 MB training split takes 1.1-1.3 s (2048 tokens: 2.5-2.9 s);
# recounting every chunk after every merge learns the same merges 24-30 times slower (measured
# on 100 KB). Encoding the whole 1.1 MB text takes 0.8-1.0 s with a cold cache and 0.2-0.3 s
# warm (the regex that cuts chunks is most of that); the character tokenizer's vectorised
# lookup takes 20-40 ms.
# Run the cell above for your machine's figures.

# %% [markdown]
# ## Production context: how real tokenizers do it
#
# PyTorch itself ships no tokenizer (torchtext, which had some, is no longer developed);
# practitioners load one from a library and feed its ids to `nn.Embedding`:
#
# - **OpenAI's tiktoken** implements byte-level BPE like ours, with the core in Rust. GPT-2 has
#   50,257 tokens: 256 bytes, 50,000 merges and `<|endoftext|>`; later encodings such as
#   `cl100k_base` have about 100,000. Its `encode` also refuses special tokens in ordinary text
#   unless you allow them — our `allow_special`.
# - **Hugging Face tokenizers** (Rust) trains BPE with the same bookkeeping as our `train_bpe`
#   (word counts, pair counts, and which words hold each pair), keeping the pairs in a priority
#   queue instead of scanning for the maximum, and runs pre-tokenisation in parallel.
# - **SentencePiece** (Kudo & Richardson 2018) works on raw text without pre-splitting, writes
#   the space as `▁`, and offers a unigram language model as well as BPE; Llama 2 used its BPE
#   with 32,000 tokens, Llama 3 moved to a tiktoken-style vocabulary of about 128,000.
#
# GPT-2's original encoder already cached the encoding of each word, as our `encode` does:
# natural text repeats its words, so most lookups never run the merge loop.

# %% [markdown]
# ## Integration test: text to a batch of ids and back

# %%
def test_integration_text_to_batch():
    documents = ["To be, or not to be: that is the question.", "Whether 'tis nobler in the mind",
                 "to suffer the slings and arrows of outrageous fortune"]
    corpus = "<|endoftext|>".join(documents * 5)
    tokenizer = BPETokenizer().train(corpus, vocab_size=320, special_tokens=["<|endoftext|>"])
    batch = tokenizer.encode_batch(documents, pad_id=tokenizer.special_tokens["<|endoftext|>"])
    assert batch.input_ids.dtype == np.int64 and batch.input_ids.shape[0] == 3
    lengths = batch.attention_mask.numpy().sum(axis=1)
    for row, text, length in zip(batch.input_ids.numpy(), documents, lengths):
        assert tokenizer.decode(row[:length]) == text
    characters = CharTokenizer.from_text(corpus)
    char_batch = characters.encode_batch(documents, max_length=16)
    assert char_batch.input_ids.shape == (3, 16) and characters.decode(char_batch.input_ids[0]) == documents[0][:16]
    assert lengths.max() < 16 * 3, "BPE makes far fewer tokens than characters"
    print("integration: ok")


test_integration_text_to_batch()

# %% [markdown]
# ## ML systems thinking
#
# 1. A model with $d_{model} = 4096$ and an untied output layer uses a 128,000-token
#    vocabulary. How many parameters sit in the two vocabulary-sized matrices, and how many
#    bytes in float32? What fraction of an 8-billion-parameter model is that?
# 2. Doubling the vocabulary shortens sequences by some factor $f$. Attention cost scales with
#    $T^2$, the output softmax with $V$ per token. Under what conditions does the larger
#    vocabulary make a training step cheaper?
# 3. Byte-level BPE trained on English spends up to three tokens per character on Japanese or
#    Hindi text (each character is 3 UTF-8 bytes, merged only where training saw them). What
#    does that do to a user's context window and bill, and how would you choose training data
#    for a multilingual tokenizer?
# 4. Why must the exact tokenizer file ship with the model weights, and what happens to a model
#    served with a tokenizer whose merges differ by one entry?
# 5. Our encode cache maps chunk strings to ids. What is its memory cost on a stream of random
#    strings, and what eviction policy would you use in a server?
#
# ## Summary
#
# You built the bridge from text to tensors: a `Tokenizer` interface with padded `int64`
# batches and attention masks, a vectorised `CharTokenizer` that explains unknown characters
# (or maps them to an opt-in `unk_token`), and GPT-2-style byte-level BPE — pre-tokenisation
# into chunks, a training loop that updates pair counts incrementally, encoding by merge rank
# with a cache, atomic special tokens, and JSON files that are written atomically and checked
# when read, down to the memory that a file may ask for. You measured the trade-off that every language model makes: a larger vocabulary
# gives shorter sequences and cheaper attention at the cost of a larger embedding table. Next,
# module 11 turns these ids into learned vectors.
