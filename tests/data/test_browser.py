"""`robolearn data serve`: the dataset browser's JSON API over plain HTTP (urllib), and the page itself driven
in headless Chromium (tests/browser_driver.py; installs Debian's chromium + chromium-driver when they are
missing, and FAILS with the reason when that is impossible)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from robolearn.data.browser import serve
from robolearn.data.browser.server import TOKEN_HEADER
from robolearn.data.reader import Episode
from robolearn.data.synthetic import TASKS, SyntheticConfig, make_dataset

CFG = SyntheticConfig(
    num_episodes=6, steps=20, size=64, cameras=("wrist", "exterior_1"), households=2, scenes_per_household=2, seed=0
)
EP0 = "episode_000000.h5"


def make(root: Path) -> Path:
    make_dataset(root, CFG)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Read-only dataset shared by the read-only tests."""
    return make(tmp_path_factory.mktemp("browser_ds"))


@pytest.fixture(scope="module")
def server(dataset):
    s = serve(dataset, port=0)
    yield s
    s.stop()


@pytest.fixture
def rw_server(tmp_path):
    """A server over a private dataset, for tests that relabel."""
    s = serve(make(tmp_path / "ds"), port=0)
    yield s
    s.stop()


# ---- HTTP helpers -----------------------------------------------------------------------------------------
def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) with the path sent exactly as given (no client-side normalisation)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(server, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    status, _, body = request(server.url.rstrip("/") + path, headers=headers)
    return status, json.loads(body)


def post_relabel(
    server,
    ref: str,
    payload,
    *,
    token: str | None = "auto",
    origin: str | None = "auto",
    ctype: str = "application/json",
    extra: dict[str, str] | None = None,
) -> tuple[int, dict]:
    headers = {"Content-Type": ctype, **(extra or {})}
    if token == "auto":
        token = server.app.token
    if token is not None:
        headers[TOKEN_HEADER] = token
    if origin == "auto":
        origin = server.url.rstrip("/")
    if origin is not None:
        headers["Origin"] = origin
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, _, raw = request(server.url.rstrip("/") + f"/api/relabel/{ref}", "POST", body, headers)
    return status, json.loads(raw)


def file_state(root: Path) -> tuple[int, list[str], str, bool]:
    with Episode(root / EP0) as ep:
        return (
            int(ep.attrs["success"]),
            ep.instructions(),
            json.dumps(ep.attrs["label_history"]),
            (root / "relabel.log").exists(),
        )


# ---- API over plain HTTP ----------------------------------------------------------------------------------
def test_episode_list_and_filters(server, dataset):
    status, d = get_json(server, "/api/episodes")
    assert status == 200 and d["count"] == d["total"] == 6 and len(d["episodes"]) == 6
    assert d["facets"]["household"] == ["house_0", "house_1"]
    assert {e["path"] for e in d["episodes"]} == {f"episode_{i:06d}.h5" for i in range(6)}

    def count(query: str) -> int:
        st, body = get_json(server, f"/api/episodes?{query}")
        assert st == 200, body
        return body["count"]

    assert count("household=house_1") == 2
    assert count("household=house_0&scene_id=scene_1") == 2
    assert count("success=failure") == 1 and count("success=success") == 5 and count("success=unknown") == 0
    assert count("task=open%20the%20drawer") == 1
    assert count("operator=operator_0") == 2
    assert count("lab=lab_a") == 6
    assert count("where=task~drawer") == 1 and count("where=num_steps>=20&where=household=house_1") == 2
    day = d["episodes"][0]["start_time"][:10]
    assert count(f"date={day}") == 6 and count("date=1999-01-01") == 0

    for bad, word in (
        ("where=nosuch=1", "unknown column"),
        ("success=maybe", "success must be"),
        ("colour=red", "unknown parameter"),
        ("limit=x", "limit"),
    ):
        st, body = get_json(server, f"/api/episodes?{bad}")
        assert st == 400 and word in body["error"], (bad, body)


def test_episode_detail_by_path_and_uuid(server, dataset):
    st, d = get_json(server, f"/api/episode/{EP0}")
    assert st == 200
    assert d["path"] == EP0 and d["num_steps"] == 20 and d["control_hz"] == 15.0
    assert d["camera_names"] == ["wrist", "exterior_1"] and d["instructions"] == [TASKS[0]]
    low = d["lowdim"]
    assert low["t"] == list(range(20)) and low["action_space"] == "cartesian_velocity"
    assert len(low["action"]["cartesian_velocity"]) == 20 and len(low["action"]["cartesian_velocity"][0]) == 6
    assert len(low["state"]["joint_positions"][0]) == 7 and len(low["state"]["gripper_position"][0]) == 1
    with Episode(dataset / EP0) as ep:
        assert low["state"]["joint_positions"][5] == pytest.approx(ep.state("joint_positions")[5].tolist())
    st, by_uuid = get_json(server, f"/api/episode/{d['uuid']}")
    assert st == 200 and by_uuid["path"] == EP0


def test_frames_are_the_stored_bytes(server, dataset):
    with Episode(dataset / "episode_000002.h5") as ep:
        stored = {(c, t): ep.stream(c).raw(t) for c in ("wrist", "exterior_1") for t in (0, 7, 19)}
    for (cam, t), raw in stored.items():
        st, headers, body = request(f"{server.url}api/frame/episode_000002.h5/{cam}/{t}")
        assert st == 200 and headers["content-type"] == "image/jpeg" and body == raw
    for path, code in (
        ("episode_000002.h5/wrist/20", 404),
        ("episode_000002.h5/nosuchcam/0", 404),
        ("episode_000002.h5/wrist/-1", 400),
        ("episode_000002.h5/wrist/x", 400),
        ("nosuch.h5/wrist/0", 404),
    ):
        st, _, body = request(f"{server.url}api/frame/{path}")
        assert st == code and "error" in json.loads(body), path


def test_path_traversal_is_refused(server, dataset):
    outside = dataset.parent / "outside.h5"  # a real episode just outside the served folder
    shutil.copy(dataset / EP0, outside)
    refs = [
        "../outside.h5",
        "..%2Foutside.h5",
        "%2E%2E/outside.h5",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        f"sub/../../{outside.name}",
        "..%5Coutside.h5",
        str(outside).lstrip("/"),
    ]
    for ref in refs:
        for route in (f"api/episode/{ref}", f"api/frame/{ref}/wrist/0"):
            st, headers, body = request(server.url + route)
            assert st in (403, 404), (route, st)
            assert headers["content-type"].startswith("application/json") and "error" in json.loads(body)
    st, _, body = request(server.url + "api/episode/../outside.h5")
    assert st == 403 and "outside the dataset folder" in json.loads(body)["error"]
    for route in ("static/..%2Fserver.py", "static/../server.py", "static/index.html%00", "static/"):
        st, _, _ = request(server.url + route)
        assert st == 404, route
    st, _ = post_relabel(server, "..%2Foutside.h5", {"success": False})
    assert st == 403
    with Episode(outside) as ep:
        assert ep.attrs["success"] == 1


def test_unknown_episode_and_route(server):
    st, d = get_json(server, "/api/episode/episode_999999.h5")
    assert st == 404 and "episode_999999.h5" in d["error"]
    st, d = get_json(server, "/api/episode/00000000-0000-0000-0000-000000000000")
    assert st == 404
    st, d = get_json(server, "/api/nothing")
    assert st == 404 and d["status"] == 404


def test_page_and_static_files(server):
    st, headers, body = request(server.url)
    html = body.decode()
    assert st == 200 and headers["content-type"].startswith("text/html")
    assert f'content="{server.app.token}"' in html and "{{ROBOLEARN_TOKEN}}" not in html
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert not re.search(r"https?://", html), "the page must not load anything from the network"
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        st, headers, body = request(f"{server.url}static/{name}")
        assert st == 200 and headers["content-type"].startswith(ctype) and body
        assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", body), name


def test_foreign_host_header_is_refused(server):
    """DNS rebinding: a page served from evil.example that resolves to 127.0.0.1 sends its own Host."""
    st, d = get_json(server, "/api/episodes", headers={"Host": f"evil.example:{server.port}"})
    assert st == 403 and "Host" in d["error"]
    st, _ = get_json(server, "/api/episodes", headers={"Host": f"localhost:{server.port}"})
    assert st == 200


def test_relabel_api(rw_server):
    root = rw_server.app.root
    st, d = post_relabel(rw_server, EP0, {"success": False, "language": "wipe the table", "who": "tester"})
    assert st == 200, d
    assert {c["field"] for c in d["changes"]} == {"success", "language"}
    assert d["episode"]["metadata"]["success"] == 0 and d["episode"]["instructions"] == ["wipe the table"]
    success, instr, history, has_log = file_state(root)
    assert success == 0 and instr == ["wipe the table"] and has_log
    assert [h["field"] for h in json.loads(history)] == ["success", "language"]
    lines = (root / "relabel.log").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["who"] == "tester"
    st, body = get_json(rw_server, "/api/episodes?success=failure")
    assert body["count"] == 2  # the catalog was refreshed
    # the same labels again: no change, no new log line; null sets "unknown"
    st, d = post_relabel(rw_server, EP0, {"success": False, "language": ["wipe the table"]})
    assert st == 200 and d["changes"] == [] and len((root / "relabel.log").read_text().splitlines()) == 1
    st, d = post_relabel(rw_server, EP0, {"success": None})
    assert st == 200 and d["episode"]["metadata"]["success"] == -1
    # frames are served from the new file after the atomic replace
    st, _, raw = request(f"{rw_server.url}api/frame/{EP0}/wrist/3")
    with Episode(root / EP0) as ep:
        assert st == 200 and raw == ep.stream("wrist").raw(3)


def test_relabel_rejects_bad_input(rw_server):
    root = rw_server.app.root
    before = file_state(root)
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        ([1, 2], 400, "JSON object"),
        ({}, 400, "nothing to relabel"),
        ({"success": "maybe"}, 400, "success must be"),
        ({"success": 2}, 400, "success must be"),
        ({"language": ""}, 400, "non-empty"),
        ({"language": [1]}, 400, "language must be"),
        ({"success": True, "colour": "red"}, 400, "unknown field"),
        ({"success": False, "who": ""}, 200, None),  # empty who falls back to the default
    ]
    for payload, code, word in cases[:-1]:
        st, d = post_relabel(rw_server, EP0, payload)
        assert st == code and word in d["error"], (payload, d)
    st, d = post_relabel(rw_server, EP0, {"success": False}, ctype="text/plain")
    assert st == 415
    st, d = post_relabel(rw_server, "episode_999999.h5", {"success": False})
    assert st == 404
    st, _, raw = request(
        f"{rw_server.url}api/relabel/{EP0}",
        "POST",
        b"x" * 70000,
        {"Content-Type": "application/json", TOKEN_HEADER: rw_server.app.token},
    )
    assert st == 413
    assert file_state(root) == before


def test_relabel_needs_token_and_same_origin(rw_server):
    root = rw_server.app.root
    before = file_state(root)
    port = rw_server.port
    for kw, word in (
        ({"token": None}, "token"),
        ({"token": "wrong"}, "token"),
        ({"origin": "http://evil.example"}, "cross-origin"),
        ({"origin": f"http://127.0.0.1:{port + 1}"}, "cross-origin"),
        ({"extra": {"Sec-Fetch-Site": "cross-site"}}, "cross-site"),
        ({"extra": {"Host": f"evil.example:{port}"}, "origin": f"http://evil.example:{port}"}, "Host"),
    ):
        st, d = post_relabel(rw_server, EP0, {"success": False}, **kw)
        assert st == 403 and word.lower() in d["error"].lower(), (kw, d)
    assert file_state(root) == before
    # no Origin header at all (a script, not a browser) is fine with the token
    st, d = post_relabel(rw_server, EP0, {"success": False}, origin=None)
    assert st == 200 and d["episode"]["metadata"]["success"] == 0


# ---- hostile requests (issue 16) ----------------------------------------------------------------------------
def raw_request(server, head: str, body: bytes = b"", shut: bool = False, then: bytes = b"") -> tuple[int, bytes]:
    """Send `head` (request line and headers, without the blank line) and `body` over a raw socket, read the
    response's status line and headers; then try to send `then` (the server may have closed: ignored)."""
    u = urlsplit(server.url)
    sock = socket.create_connection((u.hostname, u.port), timeout=30)
    try:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        try:
            for i in range(0, len(then), 1 << 20):
                sock.sendall(then[i : i + (1 << 20)])
        except OSError:
            pass
        return int(data.split()[1]), data
    finally:
        sock.close()


def relabel_head(server, length: int | str, extra: str = "") -> str:
    host = urlsplit(server.url).netloc
    return (
        f"POST /api/relabel/{EP0} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"{TOKEN_HEADER}: {server.app.token}\r\nContent-Length: {length}{extra}"
    )


def test_double_encoded_and_symlinked_paths_are_refused(tmp_path):
    root = make(tmp_path / "ds")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / EP0, outside / "secret.h5")
    (root / "link.h5").symlink_to(outside / "secret.h5")  # a file link out of the root: indexed, never served
    (root / "linkdir").symlink_to(outside, target_is_directory=True)  # folder links are not followed at all
    s = serve(root, port=0)
    try:
        for ref in (
            "link.h5",
            "linkdir/secret.h5",
            "%252E%252E%252Foutside%252Fsecret.h5",
            "%252e%252e/outside/secret.h5",
            "%25252E%25252E/outside/secret.h5",
            "..%252Foutside/secret.h5",
            "%2F%2Fetc%2Fpasswd",
            f"{'%2E%2E%2F' * 8}etc/passwd",
        ):
            for route in (f"api/episode/{ref}", f"api/frame/{ref}/wrist/0"):
                st, headers, body = request(s.url + route)
                assert st in (403, 404), (route, st)
                assert "error" in json.loads(body)
        st, _, body = request(s.url + "api/episode/link.h5")
        assert st == 403 and "symbolic link" in json.loads(body)["error"]
        st, d = post_relabel(s, "link.h5", {"success": False})
        assert st == 403
        with Episode(outside / "secret.h5") as ep:
            assert ep.attrs["success"] == 1 and ep.attrs["label_history"] == []
        st, _ = get_json(s, "/api/episodes")
        assert st == 200
    finally:
        s.stop()


def test_hostile_bodies_are_refused_and_the_server_keeps_serving(rw_server):
    root = rw_server.app.root
    before = file_state(root)
    big = 1 << 30
    st, _ = raw_request(rw_server, relabel_head(rw_server, big), b'{"success": false')  # 1 GB declared
    assert st == 413
    st, _ = raw_request(rw_server, relabel_head(rw_server, 50 << 20), then=b" " * (50 << 20))  # a real 50 MB body
    assert st == 413
    for length in ("-1", "abc", "1e9", ""):
        st, _ = raw_request(rw_server, relabel_head(rw_server, length), b"{}")
        assert st == 411, length
    st, _ = raw_request(rw_server, relabel_head(rw_server, 100), b'{"success":', shut=True)  # body cut short
    assert st == 400
    nested = b"[" * 30000 + b"]" * 30000
    st, d = post_relabel(rw_server, EP0, nested)
    assert st == 400 and "nested" in d["error"]
    for payload in (b"", b"null", b'"text"', b"1e999", b'{"success": NaN}', b'{"success": false}' + b"x"):
        st, d = post_relabel(rw_server, EP0, payload)
        assert st == 400, (payload, d)
    for origin in ("null", "http://localhost.evil.example", "file://"):
        st, d = post_relabel(rw_server, EP0, {"success": False}, origin=origin)
        assert st == 403, origin
    st, d = post_relabel(rw_server, EP0, {"success": False}, extra={"Transfer-Encoding": "chunked"})
    assert st in (400, 411)
    assert file_state(root) == before
    st, body = get_json(rw_server, "/api/episodes")
    assert st == 200 and body["count"] == 6
    st, d = post_relabel(rw_server, EP0, {"success": False})
    assert st == 200 and d["episode"]["metadata"]["success"] == 0


def test_serve_command(tmp_path):
    """`robolearn data serve DIR --port 0` prints the URL, serves, and stops on Ctrl-C."""
    root = make(tmp_path / "ds")
    code = "import sys, robolearn.data.browser; from robolearn.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "data", "serve", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # a shell without job control starts background jobs with SIGINT ignored, and Python then installs no
        # Ctrl-C handler: give the server the default, as an interactive terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url, seen = None, []
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, "".join(seen)
        with urllib.request.urlopen(url + "api/episodes", timeout=30) as r:
            assert json.load(r)["count"] == 6
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"no exit 30 s after SIGINT; output: {''.join(seen)}{proc.communicate()[0]}")
        assert proc.returncode == 0 and "stopped" in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_missing_folder(tmp_path):
    from robolearn.data.commands import ServeCommand, serve_cmd

    assert serve_cmd(ServeCommand(root=tmp_path / "nope", port=0)) == 2


# ---- the page in headless Chromium ------------------------------------------------------------------------
ROWS = "return document.querySelectorAll('#episodes tbody tr').length"
IMAGES = """return [...document.querySelectorAll('#cameras img.cam')].map(i => ({
  camera: i.dataset.camera, src: i.getAttribute('src'), complete: i.complete, w: i.naturalWidth}))"""


@pytest.mark.timeout(1200)  # the first run on a fresh machine installs Chromium
def test_page_in_headless_chromium(chromium, tmp_path):
    from browser_driver import Browser

    root = make(tmp_path / "ds")
    srv = serve(root, port=0)
    try:
        with Browser(*chromium) as b:
            try:
                _drive_page(b, srv, root)
            except BaseException:
                shot = b.screenshot(tmp_path / "failure.png")
                print(f"screenshot: {shot}\nchromedriver log:\n{b.driver_log()}")
                raise
            _shot(b, "table.png")
    finally:
        srv.stop()


def _shot(b, name: str) -> None:
    """Screenshots for a person to look at, when ROBOLEARN_BROWSER_SHOTS names a folder."""
    if os.environ.get("ROBOLEARN_BROWSER_SHOTS"):
        b.screenshot(Path(os.environ["ROBOLEARN_BROWSER_SHOTS"]) / name)


def _drive_page(b, srv, root: Path) -> None:
    b.get(srv.url)
    b.watch_errors()
    # the catalog table: 6 rows
    b.wait_for(f"{ROWS} === 6", what="6 rows in the catalog table")
    assert "6 of 6 episodes" in b.text("#count")

    # a filter narrows the table: household house_1 holds episodes 2 and 3
    b.click('#f-household option[value="house_1"]')
    b.wait_for(f"{ROWS} === 2", what="2 rows after filtering household=house_1")
    households = b.execute(
        "return [...document.querySelectorAll('#episodes tbody tr td:nth-child(3)')].map(td => td.textContent)"
    )
    assert households == ["house_1", "house_1"]
    b.click('#f-success option[value="failure"]')
    b.wait_for(f"{ROWS} === 1", what="1 row for house_1 + failure")
    b.click("#f-clear")
    b.wait_for(f"{ROWS} === 6", what="6 rows after clearing the filters")

    # open an episode: both cameras show frame 0
    b.click(f'#episodes tbody tr[data-path="{EP0}"]')
    b.wait_for("return !document.querySelector('#episode-view').hidden", what="episode view")
    b.wait_for(
        "const imgs = [...document.querySelectorAll('#cameras img.cam')];"
        "return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0)",
        timeout=15,
        what="both camera images loaded",
    )
    first = b.execute(IMAGES)
    assert [i["camera"] for i in first] == ["wrist", "exterior_1"]
    assert all(i["src"].endswith("/0") for i in first), first
    assert b.execute("return document.querySelector('#step').dataset.step") == "0"
    assert b.execute("return document.querySelectorAll('#plots .plot').length") == 10
    assert "put the block in the bowl" in b.text("#ep-label")

    # play: the step counter and both <img> sources advance together, to the last step
    b.click("#play")
    b.wait_for(
        "return Number(document.querySelector('#step').dataset.step) >= 3", timeout=10, what="playback advancing"
    )
    mid = b.execute(IMAGES)
    assert all(i["src"] != f["src"] for i, f in zip(mid, first)), mid
    b.wait_for(
        "return document.querySelector('#step').dataset.step === '19' && "
        "document.querySelector('#play').dataset.playing === '0'",
        timeout=15,
        what="playback reaching step 19 and stopping",
    )
    b.wait_for(
        "const imgs = [...document.querySelectorAll('#cameras img.cam')];"
        "return imgs.every(i => i.getAttribute('src').endsWith('/19') && i.complete && i.naturalWidth > 0)",
        what="both cameras showing frame 19",
    )
    cursor = b.execute("return Number(document.querySelector('#plots .cursor').getAttribute('x1'))")
    assert cursor == pytest.approx(1000.0)
    assert b.execute("return document.querySelector('#slider').value") == "19"

    # relabel success -> failure with a new instruction
    b.click('#relabel-success option[value="failure"]')
    b.clear("#relabel-language")
    b.type("#relabel-language", "wipe the table")
    b.clear("#relabel-who")
    b.type("#relabel-who", "browser-test")
    b.click("#relabel-save")
    b.wait_for(
        "return document.querySelector('#relabel-status').textContent.startsWith('saved')",
        timeout=15,
        what="relabel saved",
    )
    assert b.execute("return document.querySelector('#ep-label').dataset.success") == "failure"
    assert "wipe the table" in b.text("#ep-label")
    _shot(b, "episode.png")
    assert b.execute("return document.querySelectorAll('#label-history li').length") == 2

    # persisted in the file, through robolearn.data.relabel (history + relabel.log)
    with Episode(root / EP0) as ep:
        uuid = ep.attrs["uuid"]
        assert ep.attrs["success"] == 0 and ep.attrs["label_source"] == "relabel:browser-test"
        assert ep.instructions() == ["wipe the table"]
        assert [h["field"] for h in ep.attrs["label_history"]] == ["success", "language"]
        assert ep.attrs["language_annotations"][-1]["source"] == "browser"
    log = (root / "relabel.log").read_text().splitlines()
    assert len(log) == 1
    entry = json.loads(log[0])
    assert entry["uuid"] == uuid and entry["who"] == "browser-test"
    assert [c["field"] for c in entry["changes"]] == ["success", "language"]

    # back to the table: the row shows the new label
    b.click("#back")
    b.wait_for(f"{ROWS} === 6", what="table again")
    b.wait_for(
        f"return document.querySelector('#episodes tbody tr[data-path=\"{EP0}\"] td:nth-child(6)')"
        ".textContent === 'failure'",
        what="the table showing the new label",
    )
    assert b.console_errors() == []
