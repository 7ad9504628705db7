"""The course's older import path for its GPT: `from tinytorch.tinygpt import CharTokenizer, MultiHeadAttention, TinyGPT`.

Written by hand (not exported from a module): it only re-exports the classes of modules 10, 12
and 13 under the names that older course material uses. `TinyGPT` is module 13's `GPT`, built
from a `GPTConfig`:

    from tinytorch.tinygpt import CharTokenizer, GPTConfig, TinyGPT

    tokenizer = CharTokenizer.from_text(text)
    model = TinyGPT(GPTConfig(vocab_size=tokenizer.vocab_size))
"""

from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.tokenization import CharTokenizer
from tinytorch.core.transformer import GPT, GPTConfig, TransformerBlock

TinyGPT = GPT

__all__ = ["CharTokenizer", "GPT", "GPTConfig", "MultiHeadAttention", "TinyGPT", "TransformerBlock"]
