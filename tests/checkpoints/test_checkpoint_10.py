"""Checkpoint 10 (Text): Can I turn text into numbers a model can read?

Capability: build a tokenizer from text and round-trip text through ids.
"""

from tinytorch.core.tokenization import CharTokenizer

TEXT = "To be, or not to be: that is the question."


def test_i_can_turn_text_into_ids_and_back():
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = list(tokenizer.encode(TEXT))
    assert len(ids) == len(TEXT)
    assert tokenizer.vocab_size == len(set(TEXT))
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    assert tokenizer.decode(ids) == TEXT
    assert ids[TEXT.index("T")] != ids[TEXT.index("t")], "characters keep their identity"
