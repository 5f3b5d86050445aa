"""A JSON-over-HTTP server on 127.0.0.1 for backend tests: each POST is answered by answer(path, body), which
returns (status, reply): a reply of bytes is sent as it is (a gateway's HTML page, a torn body), anything else as
JSON (NaN included, as Python writes it); the server runs in a thread until close()."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class JsonEndpoint:
    def __init__(self, answer: Callable[[str, dict], tuple[int, dict | list | bytes]]):
        self.answer = answer
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = endpoint.answer(self.path, body)
                raw = isinstance(reply, bytes)
                data = reply if raw else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def close(self):
        self.server.shutdown()
