"""The dataset browser's HTTP server: the standard library's ThreadingHTTPServer, a JSON API and three static
files (robolearn/data/browser/static/).

Routes (everything else is a JSON 404):

    GET  /                                   the page (index.html with this server's token filled in)
    GET  /static/app.js | style.css          the page's script and style sheet
    GET  /api/episodes?lab=&household=&scene_id=&task=&success=&operator=&date=&where=&limit=&refresh=
    GET  /api/episode/<uuid or relative path>
    GET  /api/frame/<uuid or relative path>/<camera>/<t>   the stored JPEG/PNG bytes of one frame, as-is
    POST /api/relabel/<uuid or relative path>             JSON {"success": true|false|null, "language": ..., "who": ...}

Safety: only episodes listed in the catalog of the served folder are reachable (a reference with `..`, an
absolute path or a backslash is refused with 403 before any lookup); with a loopback bind the Host header
must name this server (DNS rebinding); a POST needs the per-server token that is written into the page, an
`application/json` body, and an Origin (when the browser sends one) equal to the server's own. Labels are
changed only through `robolearn.data.relabel.relabel` (copy, edit, fsync, atomic replace, `label_history`),
one relabel at a time, and each change is appended to `<root>/relabel.log`.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import secrets
import socket
import sys
import threading
import traceback
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from robolearn.data import catalog, relabel, schema
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.info import episode_info
from robolearn.data.reader import Episode
from robolearn.utils import is_loopback

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
TOKEN_HEADER = "X-Robolearn-Token"
TOKEN_PLACEHOLDER = "{{ROBOLEARN_TOKEN}}"
MAX_BODY = 64 * 1024  # bytes of a relabel request
REQUEST_TIMEOUT_S = 60.0  # a connection idle (or a body unsent) this long is closed
MAX_POINTS = 1000  # per-step arrays are downsampled to at most this many points for the plots
DEFAULT_LIMIT = 5000  # rows returned by /api/episodes unless ?limit= says otherwise
FILTER_PARAMS = ("lab", "household", "scene_id", "task", "success", "operator", "robot_type", "teleop_device")
OTHER_PARAMS = ("date", "where", "limit", "refresh", "scene")
FACET_COLUMNS = ("lab", "household", "scene_id", "task", "operator")
OPEN_EPISODES = 8  # episode files kept open for frame requests
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
IMAGE_TYPES = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png"}
SUCCESS_VALUES = {"1": 1, "success": 1, "true": 1, "0": 0, "failure": 0, "false": 0, "-1": -1, "unknown": -1}


class ApiError(Exception):
    """An error answered as JSON {"error": message, "status": code}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = int(status), message


# ---- data side ----------------------------------------------------------------------------------------------
class BrowserApp:
    """Everything the handler needs: the dataset root, its catalog, the token, and open episode handles."""

    def __init__(self, root: str | Path, token: str | None = None, who: str | None = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: dataset folder does not exist")
        self.root = root.resolve()
        self.catalog = catalog.default_catalog(self.root)
        self.token = token or secrets.token_urlsafe(24)
        self.who = who
        self._write_lock = threading.Lock()  # one relabel / catalog refresh at a time
        self._frame_lock = threading.Lock()  # guards the open-episode cache and reads through it
        self._open: OrderedDict[str, tuple[tuple[int, int], Episode]] = OrderedDict()
        self._by_path: dict[str, catalog.Row] = {}
        self._by_uuid: dict[str, list[catalog.Row]] = {}
        self.last_report: catalog.IndexReport | None = None
        self.refresh()

    # -- catalog ------------------------------------------------------------------------------------------
    def refresh(self) -> catalog.IndexReport:
        """Bring the catalog up to date with the folder (re-reads changed files only) and reload the lookup."""
        with self._write_lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> catalog.IndexReport:
        report = catalog.update(self.root, self.catalog)
        rows = catalog.query(self.catalog)
        by_uuid: dict[str, list[catalog.Row]] = {}
        for r in rows:
            by_uuid.setdefault(r.uuid, []).append(r)
        self._by_path, self._by_uuid = {r.path: r for r in rows}, by_uuid
        self.last_report = report
        return report

    def episodes(self, params: dict[str, list[str]]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(FILTER_PARAMS) - set(OTHER_PARAMS))
        if unknown:
            raise ApiError(400, f"unknown parameter(s) {unknown}; use {list(FILTER_PARAMS + OTHER_PARAMS)}")
        if _flag(params, "refresh"):
            self.refresh()
        filters: list[str] = []
        for name in FILTER_PARAMS + ("scene",):
            for value in params.get(name, []):
                if value == "":
                    continue
                col = "scene_id" if name == "scene" else name
                if col == "success":
                    if value.strip().lower() not in SUCCESS_VALUES:
                        raise ApiError(
                            400, f"success must be one of success, failure, unknown (or 1, 0, -1), got {value!r}"
                        )
                    value = str(SUCCESS_VALUES[value.strip().lower()])
                filters.append(f"{col}={_escape_filter_value(value)}")
        filters += [w for w in params.get("where", []) if w.strip()]
        try:
            rows = catalog.query(self.catalog, filters)
        except catalog.CatalogError as e:
            raise ApiError(400, str(e)) from None
        for date in params.get("date", []):
            if date.strip():
                rows = [r for r in rows if r.start_time.startswith(date.strip())]
        limit = _int_param(params, "limit", DEFAULT_LIMIT)
        every = list(self._by_path.values())
        facets = {c: sorted({getattr(r, c) for r in every}) for c in FACET_COLUMNS}
        errs = self.last_report.errors if self.last_report else []
        return {
            "root": str(self.root),
            "total": len(every),
            "count": len(rows),
            "truncated": len(rows) > limit,
            "filters": filters,
            "facets": facets,
            "episodes": [_row_json(r) for r in rows[:limit]],
            "unreadable": [{"path": p, "field": f, "message": m} for p, f, m in errs[:100]],
            "unreadable_count": len(errs),
        }

    def lookup(self, ref: str) -> catalog.Row:
        """The catalog row of an episode given by uuid or by its path relative to the root."""
        if not ref or "\x00" in ref:
            raise ApiError(400, "empty episode reference")
        if UUID_RE.match(ref) and ref in self._by_uuid:
            hits = self._by_uuid[ref]
            if len(hits) > 1:
                raise ApiError(
                    409,
                    f"uuid {ref} is used by {len(hits)} files ({', '.join(r.path for r in hits)}); open one by path",
                )
            return hits[0]
        p = PurePosixPath(ref)
        if p.is_absolute() or ".." in p.parts or "\\" in ref or ref.startswith("~"):
            raise ApiError(403, f"{ref!r}: refused, outside the dataset folder (give a uuid or a path relative to it)")
        row = self._by_path.get(str(p))
        if row is None:
            raise ApiError(404, f"no episode {ref!r} in the catalog of {self.root} (new file? rescan)")
        return row

    def path_of(self, row: catalog.Row) -> Path:
        path = self.root / row.path
        if not path.is_file():
            raise ApiError(404, f"{row.path}: listed in the catalog but no longer on disk (rescan)")
        try:  # a symlink (of the file or of a folder on its way) may point out of the served folder
            path.resolve(strict=True).relative_to(self.root.resolve())
        except (ValueError, OSError):
            raise ApiError(403, f"{row.path}: refused, a symbolic link to a file outside the dataset folder") from None
        return path

    # -- one episode --------------------------------------------------------------------------------------
    def episode(self, ref: str, lowdim: bool = True) -> dict[str, Any]:
        row = self.lookup(ref)
        path = self.path_of(row)
        try:
            info = episode_info(path)
            out: dict[str, Any] = {
                "path": row.path,
                "uuid": info["uuid"],
                "num_steps": info["num_steps"],
                "control_hz": info["metadata"]["control_hz"],
                "duration_s": info["duration_s"],
                "metadata": info["metadata"],
                "instructions": info["instructions"],
                "language": info["language"],
                "label_history": info["label_history"],
                "cameras": info["cameras"],
                "camera_names": [c["name"] for c in info["cameras"]],
                "file_bytes": info["file_bytes"],
            }
            if lowdim:
                with Episode(path) as ep:
                    out["lowdim"] = _lowdim_json(ep)
        except (EpisodeError, *H5_ERRORS) as e:
            raise ApiError(500, f"{row.path}: cannot read: {' '.join(str(e).split())}") from None
        return _finite(out)

    def frame(self, ref: str, camera: str, t_text: str) -> tuple[bytes, str]:
        """(stored bytes, content type) of frame t of a camera; a dropped frame gives the last present one."""
        row = self.lookup(ref)
        if not re.fullmatch(r"\d{1,9}", t_text):
            raise ApiError(400, f"step must be a non-negative integer, got {t_text!r}")
        t = int(t_text)
        if camera not in row.camera_names:
            raise ApiError(404, f"{row.path}: no camera {camera!r}; cameras: {row.camera_names}")
        path = self.path_of(row)
        with self._frame_lock:
            ep = self._episode_handle(path)
            if t >= ep.num_steps:
                raise ApiError(404, f"{row.path}: step {t} out of range [0, {ep.num_steps})")
            try:
                stream = ep.stream(camera)
                src = stream.last_valid(t)
                if src < 0:
                    raise ApiError(404, f"{row.path}: camera {camera} has no frame at or before step {t}")
                data = stream.raw(src)
            except EpisodeError as e:
                raise ApiError(500, " ".join(str(e).split())) from None
        return data, IMAGE_TYPES.get(str(stream.encoding).lower(), "application/octet-stream")

    def _episode_handle(self, path: Path) -> Episode:
        st = path.stat()
        key, sig = str(path), (st.st_ino, st.st_mtime_ns)  # a relabel replaces the inode: reopen then
        hit = self._open.get(key)
        if hit is not None and hit[0] == sig:
            self._open.move_to_end(key)
            return hit[1]
        if hit is not None:
            hit[1].close()
            del self._open[key]
        try:
            ep = Episode(path)
        except EpisodeError as e:
            raise ApiError(500, " ".join(str(e).split())) from None
        self._open[key] = (sig, ep)
        while len(self._open) > OPEN_EPISODES:
            _, (_, old) = self._open.popitem(last=False)
            old.close()
        return ep

    # -- relabel -------------------------------------------------------------------------------------------
    def relabel(self, ref: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, 'expected a JSON object like {"success": false, "language": "new instruction"}')
        unknown = sorted(set(body) - {"success", "language", "who"})
        if unknown:
            raise ApiError(400, f"unknown field(s) {unknown}; expected success, language, who")
        success = _success_from_body(body)
        language = _language_from_body(body)
        if success is None and language is None:
            raise ApiError(400, "nothing to relabel: give success (true, false or null for unknown) and/or language")
        who = body.get("who") or self.who or f"browser:{relabel.current_user()}"
        if not isinstance(who, str) or len(who) > 200 or not who.strip():
            raise ApiError(400, "who must be a short non-empty string")
        with self._write_lock:
            row = self.lookup(ref)
            path = self.path_of(row)
            try:
                # log=False: the line goes to <root>/relabel.log below, not next to each file
                results = relabel.relabel(
                    [path], success=success, language=language, who=who.strip(), source="browser", log=False
                )
            except ValueError as e:
                raise ApiError(400, " ".join(str(e).split())) from None
            except (EpisodeError, OSError) as e:
                raise ApiError(409, f"relabel failed, the file is unchanged: {' '.join(str(e).split())}") from None
            changes = [c for r in results for c in r.changes]
            for r in results:
                if r.changes:
                    relabel.log_relabel(self.root, r, who.strip())
            self._refresh_locked()
        return {"changes": changes, "episode": self.episode(row.path, lowdim=False)}

    def close(self) -> None:
        with self._frame_lock:
            for _, ep in self._open.values():
                ep.close()
            self._open.clear()


def _escape_filter_value(value: str) -> str:
    return value.replace(",", "\\,")


def _flag(params: dict[str, list[str]], name: str) -> bool:
    return any(v.strip().lower() in ("1", "true", "yes") for v in params.get(name, []))


def _int_param(params: dict[str, list[str]], name: str, default: int) -> int:
    values = [v for v in params.get(name, []) if v.strip()]
    if not values:
        return default
    if not re.fullmatch(r"\d{1,9}", values[-1].strip()):
        raise ApiError(400, f"{name} must be a non-negative integer, got {values[-1]!r}")
    return int(values[-1])


def _row_json(r: catalog.Row) -> dict[str, Any]:
    d = r._asdict()
    d["success_word"] = {1: "success", 0: "failure"}.get(r.success, "unknown")
    return d


def _success_from_body(body: dict[str, Any]) -> int | None:
    """Absent: unchanged; true / false / null ("unknown") -> 1 / 0 / -1."""
    if "success" not in body:
        return None
    v = body["success"]
    if v is None:
        return -1
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str) and v.strip().lower() in SUCCESS_VALUES:
        return SUCCESS_VALUES[v.strip().lower()]
    if isinstance(v, int) and v in (-1, 0, 1):
        return v
    raise ApiError(400, f"success must be true, false or null (unknown), got {v!r}")


def _language_from_body(body: dict[str, Any]) -> list[str] | None:
    """Absent or null: unchanged; a string (one instruction per line) or a list of strings."""
    v = body.get("language")
    if v is None:
        return None
    if isinstance(v, str):
        lines = [s.strip() for s in v.splitlines() if s.strip()]
    elif isinstance(v, list) and all(isinstance(s, str) for s in v):
        lines = [s.strip() for s in v if s.strip()]
    else:
        raise ApiError(400, f"language must be a string or a list of strings, got {type(v).__name__}")
    if not lines:
        raise ApiError(400, "language needs at least one non-empty instruction")
    if any(len(s) > 2000 for s in lines) or len(lines) > 50:
        raise ApiError(400, "language: at most 50 instructions of at most 2000 characters")
    return lines


def _lowdim_json(ep: Episode) -> dict[str, Any]:
    """Every state and action field, downsampled to at most MAX_POINTS steps: {"t": [...], "state": {key:
    [[...]] (points x dims)}, "action": {...}, "action_space": ...}."""
    n = ep.num_steps
    stride = max(1, math.ceil(n / MAX_POINTS))
    idx = np.arange(0, n, stride)
    if n and idx[-1] != n - 1:
        idx = np.append(idx, n - 1)

    def part(fields: tuple[schema.Field, ...], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            try:
                a = np.asarray(ep.array(f.path), dtype=np.float64)[idx]
            except EpisodeError:  # a field this file lacks (validate reports it): no plot for it
                continue
            out[f.path[len(prefix) + 1 :]] = a.reshape(len(idx), -1).tolist()
        return out

    return {
        "t": idx.tolist(),
        "stride": stride,
        "action_space": ep.attrs.get("action_space"),
        "state": part(schema.STATE_FIELDS, schema.STATE_GROUP),
        "action": part(schema.ACTION_FIELDS, schema.ACTION_GROUP),
    }


def _finite(v: Any) -> Any:
    """NaN / Inf -> None (JSON has no such numbers; JavaScript's JSON.parse would reject them)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, np.generic):
        return _finite(v.item())
    return v


# ---- HTTP side ----------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a player fetches many small frames
    server: BrowserServer
    server_version = "robolearn-browser"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # socket timeout: a slow or stalled client cannot hold a thread forever

    # -- plumbing ------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message, "status": status})

    def _run(self, fn: Any) -> None:
        try:
            self._check_host()
            fn()
        except ApiError as e:
            self._error(e.status, e.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - answer with JSON, keep serving
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            try:
                self._error(500, f"internal error: {type(e).__name__}: {e}")
            except OSError:
                pass

    def _check_host(self) -> None:
        """With a loopback bind, the Host header must name this server (a DNS-rebinding page cannot)."""
        allowed = self.server.allowed_hosts
        host = (self.headers.get("Host") or "").strip().lower()
        if allowed is not None and host not in allowed:
            raise ApiError(403, f"Host {host!r} refused: use {self.server.url}")

    def _segments(self) -> tuple[list[str], dict[str, list[str]]]:
        parts = urlsplit(self.path)
        raw = parts.path.split("/")[1:]
        return [unquote(s) for s in raw], parse_qs(parts.query, keep_blank_values=True)

    # -- GET -----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._run(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._run(self._get)

    def _get(self) -> None:
        segs, params = self._segments()
        app = self.server.app
        if segs in ([""], ["index.html"]):
            html = (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace(TOKEN_PLACEHOLDER, app.token)
            self._send(
                200,
                html.encode(),
                "text/html; charset=utf-8",
                {"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP},
            )
        elif len(segs) == 2 and segs[0] == "static":
            if segs[1] not in STATIC_FILES:
                raise ApiError(404, f"no static file {segs[1]!r}")
            self._send(200, (STATIC_DIR / segs[1]).read_bytes(), STATIC_FILES[segs[1]], {"Cache-Control": "no-cache"})
        elif segs == ["api", "episodes"]:
            self._json(200, app.episodes(params))
        elif len(segs) >= 3 and segs[:2] == ["api", "episode"]:
            self._json(200, app.episode("/".join(segs[2:])))
        elif len(segs) >= 5 and segs[:2] == ["api", "frame"]:
            data, ctype = app.frame("/".join(segs[2:-2]), segs[-2], segs[-1])
            # Frames never change under a relabel; a short cache lets the player's preloads be reused.
            self._send(200, data, ctype, {"Cache-Control": "private, max-age=600"})
        elif segs == ["favicon.ico"]:
            self._send(204, b"", "image/x-icon")
        else:
            raise ApiError(404, f"no route GET {urlsplit(self.path).path}")

    # -- POST ----------------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True  # an error may leave an unread body behind: never reuse the connection
        self._run(self._post)

    def _post(self) -> None:
        segs, _ = self._segments()
        if not (len(segs) >= 3 and segs[:2] == ["api", "relabel"]):
            raise ApiError(404, f"no route POST {urlsplit(self.path).path}")
        self._check_same_origin()
        body = self._read_json()
        self._json(200, self.server.app.relabel("/".join(segs[2:]), body))

    def _check_same_origin(self) -> None:
        app = self.server.app
        token = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(token.encode(), app.token.encode()):
            raise ApiError(
                403, f"missing or wrong {TOKEN_HEADER} header: changes are accepted from this server's own page only"
            )
        host = (self.headers.get("Host") or "").strip().lower()
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{host}":
            raise ApiError(403, f"cross-origin request from {origin!r} refused")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise ApiError(403, f"cross-site request ({site}) refused")

    def _read_json(self) -> Any:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise ApiError(411, "send the body with a Content-Length")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, f"expected Content-Type application/json, got {ctype or 'none'!r}")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.strip().isdigit():
            raise ApiError(411, "Content-Length required")
        length = int(length_text)
        if length > MAX_BODY:
            raise ApiError(413, f"body too large ({length} bytes > {MAX_BODY})")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            raise ApiError(408, f"body not received within {REQUEST_TIMEOUT_S:.0f} s") from None
        if len(raw) < length:
            raise ApiError(400, f"body ended after {len(raw)} of the {length} bytes declared by Content-Length")
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError(400, f"body is not valid JSON: {e}") from None
        except RecursionError:
            raise ApiError(400, "body is not valid JSON: nested too deeply") from None


class BrowserServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer with the app, its URL and (after `start`) its serving thread."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, app: BrowserApp, host: str, port: int, verbose: bool = False):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.app, self.verbose = app, verbose
        self.thread: threading.Thread | None = None
        super().__init__((host, port), Handler)
        self.host, self.port = host, int(self.server_address[1])
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
        self.url = f"http://{_bracket(shown)}:{self.port}/"
        self.allowed_hosts = _allowed_hosts(host, self.port)

    def start(self) -> BrowserServer:
        self.thread = threading.Thread(target=self.serve_forever, name=f"robolearn-browser:{self.port}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.shutdown()
            self.thread.join(timeout=10)
        self.server_close()
        self.app.close()


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _allowed_hosts(host: str, port: int) -> set[str] | None:
    """Host header values accepted with a loopback bind; None (anything) for other binds."""
    if not is_loopback(host):
        return None
    return {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]", _bracket(host).lower())}


def make_server(
    root: str | Path, host: str = "127.0.0.1", port: int = 8765, verbose: bool = False, who: str | None = None
) -> BrowserServer:
    """Index `root` (catalog.update) and bind the server; not yet serving (call `.start()` or
    `.serve_forever()`)."""
    return BrowserServer(BrowserApp(root, who=who), host, port, verbose=verbose)


def serve(
    root: str | Path, host: str = "127.0.0.1", port: int = 0, verbose: bool = False, who: str | None = None
) -> BrowserServer:
    """Start the browser for dataset folder `root` in a background thread and return the server: open
    `server.url`; `server.stop()` ends it. Port 0 picks a free port."""
    return make_server(root, host, port, verbose=verbose, who=who).start()
