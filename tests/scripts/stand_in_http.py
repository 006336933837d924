"""A stand-in service for the check scripts' tests: a real HTTP server on the loopback whose handler answers JSON."""
from __future__ import annotations

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Type


def send_json(handler: BaseHTTPRequestHandler, value: Any) -> None:
    """A 200 answer of `value` as JSON, with its length (the scripts read it as the service sends it)."""
    answer = json.dumps(value).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(answer)))
    handler.end_headers()
    handler.wfile.write(answer)


@contextlib.contextmanager
def serving(handler: Type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """The server's base URL while it runs; it stops within a twentieth of a second of the block's end."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
