"""A small MCP server over stdio: a notebook the example agent (examples/agents/notes.py) uses
through the `mcp_servers` section of examples/keel.json. No network, no files: the notes live in
this process (Keel starts it on first use and restarts it if it dies; a restart empties it).

Built with the official `mcp` SDK's FastMCP; run it by hand with `python notes_server.py` (it
speaks JSON-RPC on stdin/stdout). `list_notes` is marked read-only, so Keel may send a call that a
dying server lost once more to its replacement; `add_note` is not.
"""

from __future__ import annotations

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

server = FastMCP("notes", log_level="WARNING")
NOTES: list[str] = []


@server.tool()
def add_note(text: str) -> str:
    """Write a note in the notebook; returns its number."""
    NOTES.append(text)
    return f"note {len(NOTES)} saved"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def list_notes() -> str:
    """Every note in the notebook, one per line, numbered."""
    if not NOTES:
        return "(no notes)"
    return "\n".join(f"{n}. {text}" for n, text in enumerate(NOTES, 1))


if __name__ == "__main__":
    server.run("stdio")
