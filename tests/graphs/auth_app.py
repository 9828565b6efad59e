"""A project's own routes behind authentication (`http.enable_custom_route_auth`)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    user = request.user
    return {"identity": user.identity, "team": user["team"]}
