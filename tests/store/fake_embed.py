"""A deterministic embedding for tests where the model is not what is tested: bag of words.

Each lower-cased word gets a fixed pseudo-random unit vector (seeded by its md5, so the same in
every process); a text is the sum of its words' vectors. Texts sharing words are close, texts
with no word in common are nearly orthogonal (|cosine| about 0.06), and a text without words is
the zero vector. Referenced from Keel's settings as `"tests.store.fake_embed:embed"`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re

DIMS = 256
WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=4096)
def word_vector(word: str) -> tuple[float, ...]:
    rng = random.Random(int.from_bytes(hashlib.md5(word.encode()).digest(), "big"))
    raw = [rng.gauss(0.0, 1.0) for _ in range(DIMS)]
    norm = math.sqrt(sum(x * x for x in raw))
    return tuple(x / norm for x in raw)


def vector(text: str) -> list[float]:
    out = [0.0] * DIMS
    for word in WORD.findall(text.lower()):
        for i, x in enumerate(word_vector(word)):
            out[i] += x
    return out


def embed(texts: list[str]) -> list[list[float]]:
    return [vector(t) for t in texts]


async def aembed(texts: list[str]) -> list[list[float]]:
    """The same, as a coroutine function (Keel accepts both)."""
    return embed(texts)
