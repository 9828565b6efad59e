"""The servers of the auth benchmark (bench/auth.py): Keel on SQLite without auth, with built-in
API keys, with JWT bearer tokens (verified tokens cached, and not), and with a project's Python
`@auth.authenticate` + `@auth.on` (bench/auth_handler.py); `langgraph dev` without auth and with
the same auth.py. Each knows the headers its requests carry."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.auth_handler import TOKEN
from bench.contenders import BENCH_DIR, LangGraphDevServer, Server, write_graphs
from tests.support.server import serve_command

HANDLER_FILE = BENCH_DIR / "auth_handler.py"
HANDLER_AUTH = {"path": "./auth_handler.py:auth"}
ISSUER = "https://issuer.bench.invalid/"
AUDIENCE = "keel-bench"
KID = "bench-key-1"
ORG = "bench-org"
# Built-in parts other engineers are adding: a row runs when its module is in the tree.
MODULES = {"api_key": "keel.auth.keys", "jwt": "keel.auth.jwt", "jwt_nocache": "keel.auth.jwt"}


def missing_module(mode: str) -> str | None:
    """The module a Keel auth mode needs that this tree lacks (None: it can run)."""
    module = MODULES.get(mode)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return module


class KeelAuthServer(Server):
    """`keel serve` on a fresh SQLite file with one auth mode:
    none | api_key | jwt | jwt_nocache | handler."""

    key = "keel"
    label = "Keel (SQLite)"

    def __init__(self, workdir: Path, mode: str) -> None:
        super().__init__(workdir)
        self.mode = mode
        self.headers: dict[str, str] = {}
        self.database = f"sqlite:///{workdir / 'keel.db'}"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        auth: dict[str, Any] | None = None
        if self.mode == "handler":
            shutil.copy(HANDLER_FILE, self.workdir / "auth_handler.py")
            auth = HANDLER_AUTH
        elif self.mode == "api_key":
            auth = {"api_keys": True}
        elif self.mode in ("jwt", "jwt_nocache"):
            auth = {"jwt": self._jwt_section()}
        self.config = write_graphs(self.workdir, "keel.json", {"auth": auth} if auth else None)

    def command(self) -> list[str]:
        return serve_command(self.config, self.port, self.database)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": ""}

    def start(self, timeout: float = 90.0) -> None:
        super().start(timeout)
        self.headers = self._credentials()

    def _credentials(self) -> dict[str, str]:
        if self.mode == "handler":
            return {"Authorization": f"Bearer {TOKEN}"}
        if self.mode == "api_key":
            return {"Authorization": f"Bearer {self._create_key()}"}
        if self.mode in ("jwt", "jwt_nocache"):
            return {"Authorization": f"Bearer {self._token()}"}
        return {}

    def _create_key(self) -> str:
        """`keel keys create`, as an operator would run it, on the server's database."""
        command = [sys.executable, "-m", "keel.cli", "keys", "create", "--org", ORG]
        command += ["--role", "admin", "--config", str(self.config), "--database", self.database]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
        )
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"keel keys create failed: {done.stderr[-400:]}")
        return done.stdout.strip().splitlines()[-1]

    def _jwt_section(self) -> dict[str, Any]:
        """An ES256 key pair of the bench's own: the public half as a JWKS file."""
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec

        self._private_key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._private_key.public_key()))
        public.update(kid=KID, alg="ES256", use="sig")
        (self.workdir / "jwks.json").write_text(json.dumps({"keys": [public]}))
        section: dict[str, Any] = {"issuer": ISSUER, "audience": AUDIENCE}
        section["jwks_file"] = "jwks.json"
        if self.mode == "jwt_nocache":
            section["token_cache_seconds"] = 0
        return section

    def _token(self) -> str:
        import jwt

        now = int(time.time())
        claims: dict[str, Any] = {"sub": "bench", "org": ORG, "role": "admin", "iat": now}
        claims.update(iss=ISSUER, aud=AUDIENCE, exp=now + 3600)
        return jwt.encode(claims, self._private_key, algorithm="ES256", headers={"kid": KID})


class LangGraphDevAuthServer(LangGraphDevServer):
    """`langgraph dev`, without auth or with bench/auth_handler.py."""

    def __init__(self, workdir: Path, handler: bool) -> None:
        super().__init__(workdir)
        self.handler = handler
        self.headers = {"Authorization": f"Bearer {TOKEN}"} if handler else {}

    def prepare(self) -> None:
        extra: dict[str, Any] = {"dependencies": ["."], "env": {}}
        if self.handler:
            self.workdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(HANDLER_FILE, self.workdir / "auth_handler.py")
            extra["auth"] = HANDLER_AUTH
        write_graphs(self.workdir, "langgraph.json", extra)
