"""Sleep-time reflection: after a conversation goes idle, distil its lasting facts into the store.

Keel runs this graph from the `reflect` trigger in examples/keel.json (docs/sleep-time.md) with
the source thread's recent messages as input. The facts go under ("memories", user_id), where
the `memory` example's semantic search finds them in the next conversation.

With no KEEL_MODEL the extraction is deterministic: the user's first-person statements ("My cat
is called Miso", "I fly to Lisbon on Friday"). With KEEL_MODEL set (any `init_chat_model` string,
as the chat example) the model lists the facts.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

FIRST_PERSON = {"i", "i'm", "im", "i've", "i'd", "i'll", "my", "we", "we're", "our", "mine"}
PROMPT = (
    "List the lasting facts about the user in this conversation (preferences, plans, people, "
    "things they own), one short sentence per line, and nothing else."
)


class State(TypedDict, total=False):
    trigger: str
    source_thread_id: str
    messages: list[Any]  # the source thread's recent messages (as stored: dicts)
    facts: list[str]  # what was written to the store


def namespace(config: RunnableConfig) -> tuple[str, ...]:
    """The `memory` example's namespace for this user."""
    return ("memories", str(config.get("configurable", {}).get("user_id", "anonymous")))


def _role_and_text(message: Any) -> tuple[str, str]:
    if isinstance(message, dict):
        role, content = (
            str(message.get("type") or message.get("role") or ""),
            message.get("content"),
        )
    else:
        role, content = str(getattr(message, "type", "")), getattr(message, "content", "")
    if isinstance(content, list):
        content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return role, str(content or "")


def user_texts(messages: list[Any]) -> list[str]:
    texts = [_role_and_text(m) for m in messages]
    return [text for role, text in texts if role in ("human", "user")]


def first_person_facts(texts: list[str]) -> list[str]:
    """Statements (not questions) in which the user speaks about themselves."""
    facts: list[str] = []
    for text in texts:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            sentence = sentence.strip()
            words = sentence.split()
            if not words or sentence.endswith("?"):
                continue
            if words[0].lower().strip(",") in FIRST_PERSON:
                fact = sentence.rstrip(".!")
                if fact not in facts:
                    facts.append(fact)
    return facts


async def model_facts(texts: list[str]) -> list[str]:
    from langchain.chat_models import init_chat_model

    model = init_chat_model(os.environ["KEEL_MODEL"])
    reply = await model.ainvoke([("system", PROMPT), ("user", "\n".join(texts))])
    lines = [line.strip(" -*\t") for line in str(reply.content).splitlines()]
    return [line for line in lines if line]


async def distil(state: State, config: RunnableConfig, *, store: BaseStore) -> State:
    texts = user_texts(state.get("messages") or [])
    if not texts:
        return {"facts": []}
    facts = await model_facts(texts) if os.environ.get("KEEL_MODEL") else first_person_facts(texts)
    for fact in facts:
        key = hashlib.sha1(fact.lower().encode()).hexdigest()[:16]  # the same fact once
        value = {"text": fact, "source_thread_id": state.get("source_thread_id")}
        await store.aput(namespace(config), key, value)
    return {"facts": facts}


builder = StateGraph(State)
builder.add_node("distil", distil)
builder.add_edge(START, "distil")
builder.add_edge("distil", END)
graph = builder.compile(name="reflect")
