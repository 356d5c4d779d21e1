"""`robolearn data serve DIR`: a local web page to browse a dataset.

The catalog as a filterable table, an episode view that plays every camera in sync with the action and state
plots under a shared cursor, and relabel controls (success, language) that go through
`robolearn.data.toolkit.relabel`. Standard library HTTP server, plain HTML/JS/CSS files, nothing fetched from
the network. Python API: `serve(root, host, port)` returns a started server with `.url` and `.stop()`.
See docs/browser.md.
"""

from __future__ import annotations

import sqlite3
import sys
import webbrowser
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import command, opt, positional
from robolearn.data.browser.server import ApiError, BrowserApp, BrowserServer, make_server, serve
from robolearn.utils import is_loopback


@dataclass
class ServeCommand:
    root: Path = positional(help="dataset folder")
    host: str = opt("127.0.0.1", help="address to bind (keep the loopback default unless you mean to share it)")
    port: int = opt(8765, help="port (0 = pick a free one)")
    open: bool = opt(False, help="open the page in the default web browser")
    verbose: bool = opt(False, help="log every request")
    who: str = opt("", help="name recorded with relabels made from the page (default: browser:<user>)")


@command("data", "serve")
def serve_cmd(cfg: ServeCommand) -> int:
    """Browse a dataset in a local web page: filter the catalog, play episodes, relabel."""
    try:
        server = make_server(cfg.root, cfg.host, cfg.port, verbose=cfg.verbose, who=cfg.who or None)
    except (OSError, ValueError, sqlite3.Error) as e:  # missing folder, port in use, bad catalog
        print(f"robolearn data serve: {e}", file=sys.stderr)
        return 2
    rep = server.app.last_report
    if rep is not None:
        print(f"catalog {rep.catalog}: {rep.summary()}")
    if not is_loopback(cfg.host):
        print(f"warning: bound to {cfg.host}: anyone who can reach this address can browse the dataset; "
              "relabels still need the page's token", file=sys.stderr)
    print(f"serving {server.app.root} at {server.url}  (Ctrl-C to stop)", flush=True)
    if cfg.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
        server.app.close()
    return 0


__all__ = ["ApiError", "BrowserApp", "BrowserServer", "ServeCommand", "make_server", "serve", "serve_cmd"]
