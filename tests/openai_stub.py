"""A small OpenAI-compatible chat completions server on 127.0.0.1, for tests and benchmarks.

In a test (the server runs in a background thread and stops at the end of the `with`):

    with StubServer(latency=0.0, reply=None) as server:
        spec = EndpointSpec(name="stub", base_url=server.base_url, model="stub-model")   # http://127.0.0.1:PORT/v1
        server.script.append(("status", 429, {"Retry-After": "1"}))   # the next chat request gets a 429
        ...
        server.requests   # every chat request: {"method", "path", "headers" (lower-case names), "json"}

Routes: `POST /v1/chat/completions` (a `chat.completion` object with `usage`), `GET /v1/models`;
anything else is 404. A request body that is not JSON or has no `messages` gets a 400.

Each chat request first waits `latency` seconds, then takes the next behaviour from `script` if there
is one, else gives the default reply:

    ("status", code)               answer `code` with an OpenAI-style error body
    ("status", code, headers)      the same, with these response headers (e.g. {"Retry-After": "1"})
    ("body", raw_bytes)            answer 200 with these bytes as the body (e.g. b"not json")
    ("json", obj)                  answer 200 with this JSON value as the body (e.g. {"id": "x"}: no choices)
    ("drop",)                      close the connection without answering
    ("sleep", seconds)             hang that long (or until the client gives up), then give the default reply
    ("reply", text)                answer with this assistant text

The default reply is `reply(request_json) -> str` (the assistant's text) when given, else "ok".
`latency`, `reply` and `script` may be changed while the server runs. Other arguments: `port` (default:
a free one), `loop` and `http` (uvicorn's event loop and HTTP parser), `access_log` (uvicorn's access
lines, which propagate to the root logger so that caplog sees them, like uvicorn's other loggers).

Standalone, in its own process (for the benchmark, or to point the app at by hand):

    python tests/openai_stub.py --port 8000 --latency 0.05      # then base URL http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

HOST = "127.0.0.1"
MODEL = "stub-model"
DEFAULT_REPLY = "ok"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class StubServer:
    """An OpenAI-compatible server on 127.0.0.1 (a free port unless `port` is given), as a context manager."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        reply: Callable[[dict[str, Any]], str] | None = None,
        port: int = 0,
        loop: str = "asyncio",
        http: str = "h11",
        access_log: bool = True,
    ) -> None:
        self.latency = latency
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.script: collections.deque[tuple[Any, ...]] = collections.deque()
        self.port = port
        self._loop = loop
        self._http = http
        self._access_log = access_log
        self._served = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The base URL an endpoint is given: http://127.0.0.1:PORT/v1."""
        return f"http://{HOST}:{self.port}/v1"

    def config(self) -> uvicorn.Config:
        """The uvicorn configuration: this app on 127.0.0.1, uvicorn's loggers left to propagate."""
        return uvicorn.Config(
            self,
            host=HOST,
            port=self.port,
            loop=self._loop,
            http=self._http,
            lifespan="off",
            log_config=None,
            access_log=self._access_log,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            backlog=4096,
        )

    def __enter__(self) -> StubServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        self.port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(self.config())
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"openai-stub-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The stub server on port {self.port} did not start.")
            time.sleep(0.01)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)

    # --- the ASGI app ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/v1/models":
            models = {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "medreview"}]}
            await _send_json(send, 200, models)
            return
        if path != "/v1/chat/completions":
            await _send_json(send, 404, _error_body(404, f"No route {method} {path}."))
            return
        if method != "POST":
            await _send_json(send, 405, _error_body(405, "Use POST."))
            return
        try:
            request_json = json.loads(body)
        except ValueError:
            request_json = None
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        self.requests.append({"method": method, "path": path, "headers": headers, "json": request_json})
        if self.latency:
            await asyncio.sleep(self.latency)
        behaviour = self._next_behaviour() or (None,)
        kind = behaviour[0]
        if kind == "status":
            extra = behaviour[2] if len(behaviour) > 2 else {}
            await _send_json(send, behaviour[1], _error_body(behaviour[1], "Stub error."), extra)
        elif kind == "body":
            await _send_bytes(send, 200, behaviour[1])
        elif kind == "json":
            await _send_json(send, 200, behaviour[1])
        elif kind == "drop":
            await _drop(receive, send)
        elif kind == "sleep":
            if await _hang(receive, float(behaviour[1])):
                return  # the client has gone
            await self._answer(send, request_json, None)
        elif kind == "reply":
            await self._answer(send, request_json, str(behaviour[1]))
        elif kind is None:
            await self._answer(send, request_json, None)
        else:
            raise ValueError(f"Unknown stub behaviour {behaviour!r}.")

    def _next_behaviour(self) -> tuple[Any, ...] | None:
        try:
            return self.script.popleft()
        except IndexError:
            return None

    async def _answer(self, send: Send, request_json: Any, text: str | None) -> None:
        """A chat.completion for the request, or a 400 when the request is not a chat request."""
        if not isinstance(request_json, dict) or not isinstance(request_json.get("messages"), list):
            await _send_json(send, 400, _error_body(400, "The body must be a JSON object with messages."))
            return
        if text is None:
            text = self.reply(request_json) if self.reply is not None else DEFAULT_REPLY
        self._served += 1
        prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in request_json["messages"])
        completion_tokens = len(text.split())
        completion = {
            "id": f"chatcmpl-stub-{self._served}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request_json.get("model", MODEL),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        await _send_json(send, 200, completion)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "stub_error", "code": status}}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_bytes(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> None:
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_json(send: Send, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
    await _send_bytes(send, status, json.dumps(value).encode(), headers)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _hang(receive: Receive, seconds: float) -> bool:
    """Wait `seconds`; True when the client disconnected before that."""
    try:
        await asyncio.wait_for(_until_disconnect(receive), timeout=seconds)
    except TimeoutError:
        return False
    return True


class _Dropped(Exception):
    """Raised to make uvicorn close a connection whose response has started."""


async def _drop(receive: Receive, send: Send) -> None:
    """Close the connection without answering. uvicorn's `send` is a method of the request's cycle, which
    holds the connection's transport; without it, start a response and abandon it (uvicorn then closes
    the connection, so the client sees it dropped mid-reply)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        await _until_disconnect(receive)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise _Dropped("connection dropped on purpose")


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (Ctrl-C or SIGTERM)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each chat request waits")
    parser.add_argument("--loop", default="asyncio", help="uvicorn event loop (asyncio, uvloop if installed)")
    parser.add_argument("--http", default="h11", help="uvicorn HTTP parser (h11, httptools if installed)")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--replies",
        choices=("ok", "clinical", "rubric"),
        default="ok",
        help='"ok" to everything, or "clinical": judge verdicts to grader prompts (met when the criterion\'s '
        "points are positive), a letter to multiple choice, a short answer otherwise (tests/model_replies.py), "
        'or "rubric": as "clinical", and draft criteria to rubric drafting prompts',
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    quiet = logging.getLevelName(args.log_level.upper()) not in (logging.DEBUG, logging.INFO)
    reply = None
    if args.replies in ("clinical", "rubric"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.model_replies import choosing, drafting

        reply = drafting if args.replies == "rubric" else choosing([])
    stub = StubServer(
        latency=args.latency, reply=reply, port=args.port, loop=args.loop, http=args.http, access_log=not quiet
    )
    server = uvicorn.Server(stub.config())
    print(f"openai stub: {stub.base_url} (latency {args.latency} s)", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
