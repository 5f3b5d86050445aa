"""A TCP proxy on 127.0.0.1 that cuts connections the way a flaky network does, each cut armed for one request
whose bytes contain a marker (b"XADD", b"HINCRBYFLOAT", ...):
- `cut_reply_to`: the request reaches the server, the server does it, and the client's connection is closed
  before the answer comes back (the client cannot know it was done);
- `cut_request_to`: the connection is closed before the request reaches the server (it was not done);
- `start_chaos`: every second or so a random open connection is cut wherever it is (mid-request, mid-reply, idle
  or blocked in a read), as a flaky network does; `cuts` counts every cut."""
from __future__ import annotations

import random
import socket
import threading
import time


class CuttingProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed: list[bytes] = []  # markers, one cut of a reply each
        self.armed_requests: list[bytes] = []  # markers, one cut of a request each
        self.cuts = 0
        self.lock = threading.Lock()
        self.closed = False
        self.open: set[tuple[socket.socket, socket.socket]] = set()  # (client, server) of every live connection
        threading.Thread(target=self._accept, daemon=True).start()

    def start_chaos(self, every_s: float = 1.0, seed: int = 0) -> None:
        """Cut a random open connection about every `every_s` seconds until the proxy closes."""
        rng = random.Random(seed)

        def cut_at_random() -> None:
            while not self.closed:
                time.sleep(every_s * rng.uniform(0.5, 1.5))
                with self.lock:
                    pairs = sorted(self.open, key=lambda pair: pair[0].fileno())
                    pair = rng.choice(pairs) if pairs else None
                    self.cuts += pair is not None
                if pair is not None:
                    hang_up(pair[0])
                    hang_up(pair[1])

        threading.Thread(target=cut_at_random, daemon=True).start()

    def cut_reply_to(self, marker: bytes, times: int = 1) -> None:
        with self.lock:
            self.armed += [marker] * times

    def cut_request_to(self, marker: bytes, times: int = 1) -> None:
        with self.lock:
            self.armed_requests += [marker] * times

    def _take(self, request: bytes, armed: list[bytes] | None = None) -> bool:
        armed = self.armed if armed is None else armed
        with self.lock:
            for marker in armed:
                if marker in request:
                    armed.remove(marker)
                    self.cuts += 1
                    return True
        return False

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        with self.lock:
            self.open.add((client, server))
        cut_next_reply = threading.Event()  # redis-py waits for each reply, so the next bytes back answer it

        def upstream() -> None:
            try:
                while request := client.recv(1 << 16):
                    if self._take(request, self.armed_requests):
                        return  # never sent: the server does not hear of it
                    if self._take(request):
                        cut_next_reply.set()
                    server.sendall(request)
            except OSError:
                pass
            finally:
                hang_up(server)
                hang_up(client)

        threading.Thread(target=upstream, daemon=True).start()
        try:
            while reply := server.recv(1 << 16):
                if cut_next_reply.is_set():
                    time.sleep(0.05)  # let the server finish what it was sent (a MULTI ... EXEC answers in parts)
                    return  # the server has done it; the client never hears
                client.sendall(reply)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open.discard((client, server))
            hang_up(client)
            hang_up(server)

    def close(self) -> None:
        self.closed = True
        hang_up(self.listener)


def hang_up(sock: socket.socket) -> None:
    """shutdown before close: close alone neither wakes the other thread's recv nor tells the peer."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

