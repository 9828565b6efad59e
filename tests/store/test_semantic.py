"""Semantic search quality with Keel's default embedder (the embedded offline model): on a small
labelled set of memory-style facts about one user, among 220 distractors, every question finds
its fact in the top 3.

The default model is a static word embedding: each question keeps at least one content word of
its fact (or a word close to one: "allergies" for "allergic", "mom" for "mother"). Paraphrases
with no such word ("boss" for "manager") are mostly out of its reach; they are measured and
printed, not asserted. Distractors are first sentences of Python standard-library docstrings and
memory-style sentences about other people, generated here: nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import re
from types import ModuleType

from langgraph.store.base import BaseStore

from keel.settings import StoreSettings
from tests.store.conftest import KEEL_BACKENDS, Stores, unique_ns

# key, fact, questions asking for it
FACTS: list[tuple[str, str, list[str]]] = [
    (
        "allergy",
        "I am allergic to peanuts and tree nuts.",
        ["What food allergies do I have?", "Can I eat peanuts?"],
    ),
    ("manager", "My manager is called Priya Raman.", ["Who is my manager?"]),
    (
        "flight",
        "My flight to Lisbon leaves on Friday at 7:40 am.",
        ["When does my flight to Lisbon leave?", "What time is my plane to Lisbon?"],
    ),
    ("languages", "I speak Spanish and French fluently.", ["Which languages do I speak?"]),
    (
        "programming",
        "My favourite programming language is Rust.",
        ["What programming language do I prefer?"],
    ),
    (
        "dog",
        "My dog Biscuit is a three year old beagle.",
        ["What is my dog's name?", "What breed is my dog?"],
    ),
    ("birthday", "My birthday is on March 14th.", ["When is my birthday?"]),
    ("coffee", "I drink my coffee black with no sugar.", ["How do I take my coffee?"]),
    (
        "vegetarian",
        "I have been vegetarian for ten years and do not eat meat.",
        ["Do I eat meat?", "Am I a vegetarian?"],
    ),
    (
        "gym",
        "I go to the gym on Monday, Wednesday and Friday mornings.",
        ["Which days do I go to the gym?"],
    ),
    (
        "address",
        "I live at 12 Harbour Street in Bristol.",
        ["Where do I live?", "Which street do I live on?"],
    ),
    ("phone", "My phone number is 555 0142.", ["What is my phone number?"]),
    ("sister", "My sister Anna lives in Toronto.", ["Where does my sister live?"]),
    (
        "anniversary",
        "Our wedding anniversary is on June 2nd.",
        ["When is our wedding anniversary?"],
    ),
    (
        "dentist",
        "My dentist appointment is next Tuesday at 3 pm.",
        ["When is my dentist appointment?"],
    ),
    ("car", "I drive a blue 2018 Toyota Corolla.", ["What car do I drive?"]),
    (
        "music",
        "I love listening to jazz, especially Miles Davis.",
        ["Do I like jazz?", "Which jazz musician do I love?"],
    ),
    ("book", "I am currently reading Dune by Frank Herbert.", ["Which book am I reading?"]),
    (
        "medication",
        "I take 10 mg of lisinopril every morning for my blood pressure.",
        ["What medication do I take for blood pressure?"],
    ),
    ("editor", "I use Vim as my text editor.", ["Which text editor do I use?"]),
    ("timezone", "I work in the Central European time zone.", ["What time zone am I in?"]),
    (
        "daughter",
        "My daughter Mia starts school in September.",
        ["When does my daughter start school?"],
    ),
    ("wifi", "The home wifi password is written on the fridge.", ["Where is the wifi password?"]),
    ("shoes", "My shoe size is 43 EU.", ["What size shoes do I wear?"]),
    (
        "climbing",
        "On weekends I go rock climbing.",
        ["What do I do on weekends?", "Do I like climbing?"],
    ),
    ("football", "I support Liverpool football club.", ["Which football team do I support?"]),
    ("seat", "I prefer an aisle seat on long flights.", ["Do I want a window or an aisle seat?"]),
    (
        "lactose",
        "I am lactose intolerant, so no milk in my tea.",
        ["Can I have milk in my tea?", "Am I lactose intolerant?"],
    ),
    ("bank", "My bank is Monzo and my account ends in 4471.", ["Which bank do I use?"]),
    (
        "mother",
        "My mother loves orchids; they make a good gift for her.",
        ["What gift should I buy my mother?", "What flowers does my mom like?"],
    ),
    (
        "japanese",
        "I am learning Japanese on my phone every evening.",
        ["Which language am I learning?"],
    ),
    (
        "hotel",
        "I booked the Hotel Aurora in Rome for three nights.",
        ["Which hotel did I book in Rome?"],
    ),
]
QUESTIONS = [(key, q) for key, _, questions in FACTS for q in questions]
# Pure paraphrases, no content word in common with the fact: beyond a static word embedding.
# Measured and printed, not asserted (today: 5 of 8 in the top 3).
PARAPHRASES = [
    ("manager", "What is my boss's name?"),
    ("address", "What is my home address?"),
    ("music", "What music do I like?"),
    ("dog", "What pet do I have?"),
    ("sister", "Which city is my sibling in?"),
    ("coffee", "What hot drink do I prefer?"),
    ("car", "What vehicle do I own?"),
    ("medication", "Which pills do I take?"),
]

DOC_MODULES = (
    "builtins",
    "collections",
    "csv",
    "datetime",
    "functools",
    "heapq",
    "itertools",
    "json",
    "math",
    "os",
    "os.path",
    "pathlib",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "textwrap",
    "threading",
    "zipfile",
)
PEOPLE = ["Tom", "Lena", "my neighbour", "Carlos", "my cousin", "the landlord", "Grace", "Omar"]
DOINGS = [
    "repainted the fence green",
    "keeps bees in the garden",
    "collects old postage stamps",
    "is building a wooden canoe",
    "plays the cello in an orchestra",
    "grows tomatoes on the balcony",
    "restores vintage radios",
    "knits scarves for charity",
]
WHEN = ["last spring", "every autumn", "since 2015", "most evenings", "twice a year"]


def first_sentence(doc: str | None) -> str | None:
    if not doc:
        return None
    text = " ".join(doc.strip().split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s", text)[0]
    return sentence if 30 <= len(sentence) <= 160 and "(" not in sentence else None


def docstring_sentences(count: int) -> list[str]:
    """First docstring sentences of public standard-library callables, in a fixed order."""
    found: set[str] = set()
    for name in DOC_MODULES:
        module: ModuleType = __import__(name, fromlist=["_"])
        for attr, obj in inspect.getmembers(module):
            if not attr.startswith("_") and callable(obj):
                sentence = first_sentence(inspect.getdoc(obj))
                if sentence:
                    found.add(sentence)
    ordered = sorted(found, key=lambda s: hashlib.md5(s.encode()).hexdigest())
    assert len(ordered) >= count, len(ordered)
    return ordered[:count]


def other_people(count: int) -> list[str]:
    combos = itertools.product(PEOPLE, DOINGS, WHEN)
    ordered = sorted(combos, key=lambda c: hashlib.md5(" ".join(c).encode()).hexdigest())
    return [f"{who.capitalize()} {what} {when}." for who, what, when in ordered[:count]]


def distractors() -> list[str]:
    return docstring_sentences(160) + other_people(60)


async def fill(store: BaseStore, ns: tuple[str, ...]) -> None:
    for key, fact, _ in FACTS:
        await store.aput(ns, key, {"text": fact})
    for i, text in enumerate(distractors()):
        await store.aput(ns, f"distractor-{i:03}", {"text": text})


BACKENDS = KEEL_BACKENDS


async def top3(store: BaseStore, ns: tuple[str, ...], cases: list[tuple[str, str]]) -> list[str]:
    """Search each question; print top-1 / top-3 accuracy; the misses (fact not in the top 3)."""
    top1, misses = 0, []
    for key, question in cases:
        found = [i.key for i in await store.asearch(ns, query=question, limit=3)]
        top1 += found[:1] == [key]
        if key not in found:
            misses.append(f"{question!r}: want {key}, got {found}")
    n = len(cases)
    print(f"{n} questions: top-1 {top1 / n:.0%}, top-3 {(n - len(misses)) / n:.0%}")
    print(*misses, sep="\n")
    return misses


async def test_the_right_memory_is_in_the_top_3(stores: Stores) -> None:
    """Every question sharing a word (or a close synonym) with its fact: 100% in the top 3 (the
    weakest case today, "Which language am I learning?", is 2nd, 0.04 above the 4th)."""
    storage = await stores.open_storage(StoreSettings())  # the default, embedded model
    store, ns = storage.store, unique_ns("memories")
    await fill(store, ns)
    print(f"\n{stores.backend}, {len(FACTS)} facts among {len(distractors())} distractors")
    misses = await top3(store, ns, QUESTIONS)
    print("paraphrases (not asserted):")
    await top3(store, ns, PARAPHRASES)
    assert not misses
