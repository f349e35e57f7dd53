"""Tokenizers for random-weight SD3 pipelines, learned on a small local corpus (no hub access).

The CLIP tokenizer is a byte-level BPE learned here with a deterministic tie-break (the
``tokenizers`` trainer breaks ties in hash order, so two builds would number tokens differently);
the T5 tokenizer is a sentencepiece unigram model, loaded back with ``T5Tokenizer.from_pretrained``
(``T5Tokenizer(vocab_file=...)`` silently ignores the file in transformers 5).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["CORPUS", "train_clip_tokenizer", "train_t5_tokenizer"]

_SUBJECTS = [
    "a dog",
    "a cat",
    "an astronaut",
    "a red fox",
    "a lighthouse",
    "a castle",
    "a robot",
    "an old man",
    "a young woman",
    "a bowl of fruit",
    "a sailing boat",
    "a mountain village",
    "a vintage car",
    "a dragon",
    "a city street",
    "a forest cabin",
    "a hot air balloon",
    "a cup of coffee",
    "a snowy owl",
    "a bicycle",
]
_SCENES = [
    "on the beach at sunset",
    "in a misty forest",
    "under a starry night sky",
    "in the rain",
    "on a red sofa",
    "in a futuristic city with neon lights",
    "on mars",
    "in a snowy field",
    "beside a calm lake",
    "in a busy market",
    "at golden hour",
    "in the desert",
]
_STYLES = [
    "photo, highly detailed, 8k",
    "watercolor painting",
    "oil painting in the style of van gogh",
    "digital art, trending on artstation",
    "pencil sketch",
    "cinematic lighting, sharp focus",
    "studio portrait, soft light",
    "low poly 3d render",
    "anime style illustration",
]
_NEGATIVES = [
    "blurry, low quality, deformed, ugly",
    "bad anatomy, extra fingers, watermark, text",
    "oversaturated, jpeg artifacts, noise",
    "cartoon, drawing, painting",
    "dark, grainy, cropped",
]

#: Prompt-like sentences the tiny tokenizers are learned from (deterministic order).
CORPUS: list[str] = [
    f"{subject} {scene}, {style}"
    for i, subject in enumerate(_SUBJECTS)
    for j, scene in enumerate(_SCENES)
    for k, style in enumerate(_STYLES)
    if (i + 2 * j + 3 * k) % 7 == 0
] + _NEGATIVES


def _learn_bpe_merges(words: Counter[str], num_merges: int) -> list[tuple[str, str]]:
    """Classic BPE: repeatedly merge the most frequent adjacent pair (ties: largest pair)."""
    splits = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, symbols in splits.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += words[word]
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        for word, symbols in splits.items():
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    return merges


def train_clip_tokenizer(corpus: list[str] | None = None, *, num_merges: int = 400) -> Any:
    """Learn a CLIP byte-level BPE tokenizer (77 tokens, CLIP's normalizer and pre-tokenizer)."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    backend = CLIPTokenizer()._tokenizer
    words: Counter[str] = Counter()
    for text in corpus or CORPUS:
        normalized = backend.normalizer.normalize_str(text)
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized):
            words[word] += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in alphabet + [a + "</w>" for a in alphabet]:
        vocab[symbol] = len(vocab)
    merges = _learn_bpe_merges(words, num_merges)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    # CLIP keeps its two special tokens at the end of the vocabulary.
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def train_t5_tokenizer(
    folder: str | Path, corpus: list[str] | None = None, *, vocab_size: int = 256
) -> Any:
    """Learn a sentencepiece unigram model into ``folder`` and load it as a T5 tokenizer."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus or CORPUS),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model.getvalue())
    return T5Tokenizer.from_pretrained(str(folder))
