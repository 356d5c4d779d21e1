"""A local web page to browse a dataset (`robolearn data serve DIR`, in robolearn.data.commands).

The catalog as a filterable table, an episode view that plays every camera in sync with the action and state
plots under a shared cursor, and relabel controls (success, language) that go through
`robolearn.data.relabel.relabel`. Standard library HTTP server, plain HTML/JS/CSS files, nothing fetched from
the network. Python API: `serve(root, host, port)` returns a started server with `.url` and `.stop()`.
See docs/browser.md.
"""

from __future__ import annotations

from robolearn.data.browser.server import ApiError, BrowserApp, BrowserServer, make_server, serve

__all__ = ["ApiError", "BrowserApp", "BrowserServer", "make_server", "serve"]
