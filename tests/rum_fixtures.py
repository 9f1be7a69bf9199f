"""Fixture pages for the RUM browser tests, served from a second origin on loopback.

``vitals.html`` is laid out so that its metrics are known in advance (viewport
1000 x 1000, nothing scrolls):

- one layout shift: ``#box`` (800 x 500 at the top left, absolutely positioned) moves
  down 250 px. Impact region 800 x 750 = 0.6 of the viewport, distance 250 / 1000 =
  0.25: the shift scores 0.6 x 0.25 = :data:`SHIFT_SCORE`;
- a late, large image (``img#hero``, 600 x 300, added after the shift and served
  slowly) that becomes the largest contentful paint;
- ``button#busy`` whose click handler busy-waits :data:`BUSY_MS`;
- an error thrown from a timer, a rejected promise, and a broken image
  (``/missing.png``, 404).

The page records the browser's own LCP entry in ``window.ownLcp`` for comparison.
"""

from __future__ import annotations

import random
import struct
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHIFT_SCORE = 0.15
BUSY_MS = 300
ERROR_MESSAGE = "fixture failure 42"
REJECTION_MESSAGE = "fixture rejection"


def png(width: int, height: int) -> bytes:
    """A PNG of random pixels (Chromium ignores low-entropy images, such as a solid
    colour, as LCP candidates)."""
    noise = random.Random(6)
    raw = zlib.compress(b"".join(b"\x00" + noise.randbytes(3 * width) for _ in range(height)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw)
            + chunk(b"IEND", b""))


HERO = png(600, 300)
ICON = png(16, 16)

VITALS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Vitals fixture</title>
<style>
html, body {{ margin: 0; overflow: hidden; height: 1000px; font: 14px sans-serif; }}
#box {{ position: absolute; top: 0; left: 0; width: 800px; height: 500px; background: #ccd; }}
#busy {{ position: absolute; top: 20px; left: 850px; width: 100px; height: 40px; }}
#hero {{ position: absolute; top: 650px; left: 0; }}
#broken {{ position: absolute; top: 900px; left: 850px; }}
#note {{ position: absolute; top: 950px; left: 850px; margin: 0; }}
</style>
{tag}
</head><body>
<div id="box"></div>
<button id="busy">Busy</button>
<p id="note">fixture</p>
<img id="broken" src="/missing.png" width="20" height="20" alt="">
<script>
window.ownLcp = null;
new PerformanceObserver(function (list) {{
  list.getEntries().forEach(function (e) {{ window.ownLcp = e.startTime; }});
}}).observe({{type: "largest-contentful-paint", buffered: true}});
document.getElementById('busy').addEventListener('click', function () {{
  var t = performance.now(); while (performance.now() - t < {busy}) {{}}
  document.getElementById('note').textContent = 'clicked';
}});
window.addEventListener('load', function () {{
  setTimeout(function () {{
    document.getElementById('box').style.top = '250px';
    setTimeout(function () {{
      var img = new Image(); img.id = 'hero'; img.width = 600; img.height = 300;
      img.onload = function () {{ window.heroLoaded = true; }};
      img.src = '/hero.png';
      document.body.appendChild(img);
    }}, 300);
    setTimeout(function () {{ throw new Error('{error} at ' + Date.now()); }}, 50);
    Promise.reject(new Error('{rejection}'));
  }}, 100);
}});
</script>
</body></html>
"""

SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop fixture</title>{tag}
<script>shopwatch('identify', 'customer-7');</script>
</head><body>
<h1>Product</h1>
<button id="add" onclick="shopwatch('event', 'add_to_cart', {{currency: 'EUR', value: 19.9,
  event_id: 'evt-add-1', items: [{{item_id: 'SKU-1', price: 19.9, quantity: 1}}]}})">Add</button>
<button id="route"
  onclick="history.pushState({{}}, '', '/checkout?step=2&email=a@b.example')">Go</button>
<button id="deny" onclick="shopwatch('consent', false)">Deny</button>
</body></html>
"""


def rum_tag(shopwatch_url: str, ingest_key: str, **data: str) -> str:
    """The snippet tag as the settings page shows it, with extra ``data-`` attributes."""
    extra = "".join(f' data-{k.replace("_", "-")}="{v}"' for k, v in data.items())
    return ("<script>window.shopwatch=window.shopwatch||function(){"
            "(shopwatch.q=shopwatch.q||[]).push(arguments)}</script>"
            f'<script async src="{shopwatch_url}/rum.js" data-key="{ingest_key}"{extra}></script>')


# An init script: every sendBeacon also posts a copy of its body to the page's own /log.
BEACON_COPY = """
(function () {
  var send = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = function (url, body) {
    send(location.origin + '/log', body);
    return send(url, body);
  };
})();
"""


class FixtureSite:
    """A loopback HTTP server for fixture pages: ``pages`` maps paths to HTML makers.

    ``POST /log`` bodies are kept in ``logged``: :data:`BEACON_COPY` makes the browser
    post a copy of every beacon there (Playwright does not report beacon requests).
    """

    def __init__(self, pages: dict[str, Callable[[], str]]) -> None:
        site = self
        self.logged: list[bytes] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/log":
                    site.logged.append(body)
                self._send(204, "text/plain", b"")

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/hero.png":
                    time.sleep(0.3)  # a slow image: it paints after the text
                    self._send(200, "image/png", HERO)
                elif path == "/favicon.ico":
                    self._send(200, "image/png", ICON)
                elif path in site.pages:
                    self._send(200, "text/html; charset=utf-8", site.pages[path]().encode())
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, status: int, media: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.pages = pages
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
