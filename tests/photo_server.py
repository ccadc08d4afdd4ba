"""A photo server for tests: a threaded http.server on 127.0.0.1 that logs every request it answers.

Routes:
  /photo/N.png      a distinct small PNG per N, with an ETag and Last-Modified; answers 304 to a
                    matching If-None-Match
  /redirect/N       302 to /photo/N.png
  /loop             302 to itself
  /missing.png      404
  /flaky/N.png      503 on the first request, the photo afterwards
  /slow.png         waits until the test ends (or 10 s) before answering: past any short client timeout
  /page.png         text/html, a page, not an image
  /mislabelled.png  a real PNG sent as text/html (accepted: the bytes decide)
  /big.png          a body of BIG_BYTES, over a small cap
Query strings are ignored (a signed URL's token changes nothing here).
"""

from __future__ import annotations

import io
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

BIG_BYTES = 200_000


def photo_bytes(n: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """The PNG /photo/N.png serves: a distinct colour per N."""
    out = io.BytesIO()
    Image.new("RGB", size, (n % 256, (n * 7) % 256, (n * 13) % 256)).save(out, format="PNG")
    return out.getvalue()


@dataclass
class Logged:
    path: str
    if_none_match: str | None
    if_modified_since: str | None


@dataclass
class PhotoServer:
    url: str
    log: list[Logged] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def requests_to(self, path: str) -> list[Logged]:
        return [entry for entry in self.log if entry.path == path]

    def first_time(self, path: str) -> bool:
        with self._lock:
            new = path not in self._seen
            self._seen.add(path)
            return new


def _handler(server: PhotoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            server.log.append(Logged(path, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")))
            self._route(path)

        def _route(self, path: str) -> None:
            if path.startswith("/photo/"):
                return self._photo(int(path.removeprefix("/photo/").removesuffix(".png")))
            if path.startswith("/redirect/"):
                return self._send(302, b"", "text/plain", {"Location": f"/photo/{path.rsplit('/', 1)[1]}.png"})
            if path == "/loop":
                return self._send(302, b"", "text/plain", {"Location": "/loop"})
            if path.startswith("/flaky/"):
                if server.first_time(path):
                    return self._send(503, b"busy", "text/plain")
                return self._send(200, photo_bytes(900), "image/png")
            if path == "/slow.png":
                server.release.wait(10)
                return self._send(200, photo_bytes(901), "image/png")
            if path == "/page.png":
                return self._send(200, b"<!doctype html><html><body>Sign in</body></html>", "text/html")
            if path == "/mislabelled.png":
                return self._send(200, photo_bytes(902), "text/html")
            if path == "/big.png":
                return self._send(200, b"\0" * BIG_BYTES, "image/png")
            return self._send(404, b"not found", "text/plain")

        def _photo(self, n: int) -> None:
            etag = f'"photo-{n}"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", None, {"ETag": etag})
            self._send(200, photo_bytes(n), "image/png",
                       {"ETag": etag, "Last-Modified": "Wed, 01 Jul 2026 10:00:00 GMT"})

        def _send(self, status: int, body: bytes, content_type: str | None, headers: dict | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout under test)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up (a fetch stopped at the size cap or its timeout) is expected here: no traceback."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class serve_photos:  # noqa: N801 (used as a context manager, like open)
    """`with serve_photos() as server:` a PhotoServer on a free port, stopped on exit."""

    def __enter__(self) -> PhotoServer:
        self._httpd = _QuietServer(("127.0.0.1", 0), None)  # type: ignore[arg-type]
        self._httpd.daemon_threads = True
        self.server = PhotoServer(f"http://127.0.0.1:{self._httpd.server_address[1]}")
        self._httpd.RequestHandlerClass = _handler(self.server)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self.server

    def __exit__(self, *exc) -> None:
        self.server.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
