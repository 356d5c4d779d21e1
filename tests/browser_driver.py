"""A minimal W3C WebDriver client (urllib only) for headless Chromium, plus finding or installing it.

The browser tests need `chromium` and `chromedriver`. Debian's `chromium` and `chromium-driver` packages give
a matching pair; on a fresh machine `find_or_install_chromium()` installs them with apt-get (as root). No
Python package is needed: WebDriver is JSON over HTTP to the chromedriver process, which this module starts
on a free loopback port.

Override the binaries with ROBOLEARN_CHROMIUM and ROBOLEARN_CHROMEDRIVER.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver element reference
APT_PACKAGES = ("chromium", "chromium-driver")
INSTALL_TIMEOUT_S = 900


class BrowserUnavailable(RuntimeError):
    """Chromium or chromedriver is missing and could not be installed; the message says what was tried."""


class WebDriverError(RuntimeError):
    pass


def _which(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        given = os.environ[env]
        if not (os.path.isfile(given) and os.access(given, os.X_OK)):
            raise BrowserUnavailable(f"{env}={given!r} is not an executable file")
        return given
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def find_chromium() -> tuple[str | None, str | None]:
    return (
        _which("ROBOLEARN_CHROMIUM", "chromium", "chromium-browser", "google-chrome"),
        _which("ROBOLEARN_CHROMEDRIVER", "chromedriver"),
    )


def find_or_install_chromium(install: bool = True) -> tuple[str, str]:
    """(chromium, chromedriver) paths; installs Debian's chromium + chromium-driver with apt-get when
    missing. Raises BrowserUnavailable with the reason (and apt's output) when that is impossible."""
    browser, driver = find_chromium()
    if browser and driver:
        return browser, driver
    missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p]
    if not install:
        raise BrowserUnavailable(f"{', '.join(missing)} not found")
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable(
            f"{', '.join(missing)} not found and there is no apt-get to install "
            f"{' '.join(APT_PACKAGES)}; install Chromium and its chromedriver, or point "
            "ROBOLEARN_CHROMIUM / ROBOLEARN_CHROMEDRIVER at them"
        )
    if os.geteuid() != 0:
        raise BrowserUnavailable(
            f"{', '.join(missing)} not found; installing needs root: run "
            f"`sudo apt-get install -y {' '.join(APT_PACKAGES)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install_cmd = [
        apt,
        "-o",
        "DPkg::Lock::Timeout=300",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        *APT_PACKAGES,
    ]
    log = []
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    for cmd in ([apt, "-o", "DPkg::Lock::Timeout=300", "update", "-q"], install_cmd):
        try:
            r = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=max(30.0, deadline - time.monotonic())
            )
        except subprocess.TimeoutExpired:
            raise BrowserUnavailable(f"`{' '.join(cmd)}` did not finish in {INSTALL_TIMEOUT_S} s") from None
        log.append(f"$ {' '.join(cmd)} -> exit {r.returncode}\n{(r.stdout + r.stderr)[-3000:]}")
        if r.returncode != 0:
            raise BrowserUnavailable(f"installing {' '.join(APT_PACKAGES)} failed:\n" + "\n".join(log))
    browser, driver = find_chromium()
    if not (browser and driver):
        raise BrowserUnavailable(
            "apt-get installed the packages but chromium/chromedriver are still not on PATH:\n" + "\n".join(log)
        )
    return browser, driver


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium session through chromedriver. Use as a context manager."""

    def __init__(
        self, chromium: str, chromedriver: str, width: int = 1280, height: int = 1000, start_timeout_s: float = 30.0
    ):
        self.port = _free_port()
        self._profile = tempfile.mkdtemp(prefix="robolearn-chromium-")
        self._log = open(Path(self._profile) / "chromedriver.log", "w+b")
        self._proc = subprocess.Popen(
            [chromedriver, f"--port={self.port}", "--allowed-ips=127.0.0.1"], stdout=self._log, stderr=subprocess.STDOUT
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.session: str | None = None
        try:
            self._wait_ready(start_timeout_s)
            caps = {
                "capabilities": {
                    "alwaysMatch": {
                        "browserName": "chrome",
                        "goog:chromeOptions": {
                            "binary": chromium,
                            "args": [
                                "--headless=new",
                                "--no-sandbox",
                                "--disable-gpu",
                                "--disable-dev-shm-usage",
                                "--no-first-run",
                                "--no-default-browser-check",
                                "--disable-extensions",
                                "--disable-background-networking",
                                "--disable-component-update",
                                "--disable-sync",
                                f"--user-data-dir={self._profile}/profile",
                                f"--window-size={width},{height}",
                            ],
                        },
                        "timeouts": {"script": 20000, "pageLoad": 30000},
                    }
                }
            }
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except BaseException:
            self.quit()
            raise

    # -- protocol ----------------------------------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise WebDriverError(f"chromedriver exited with {self._proc.returncode}: {self.driver_log()}")
            try:
                with urllib.request.urlopen(f"{self.base}/status", timeout=2) as r:
                    if json.load(r)["value"].get("ready"):
                        return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise WebDriverError(f"chromedriver not ready after {timeout} s: {self.driver_log()}")

    def _call(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        req = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = json.load(r)
        except urllib.error.HTTPError as e:
            try:
                v = json.load(e).get("value", {})
                msg = f"{v.get('error')}: {v.get('message', '')}".strip()
            except (ValueError, AttributeError):
                msg = str(e)
            raise WebDriverError(f"{method} {path}: {msg[:2000]}") from None
        return payload.get("value")

    def _s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    # -- commands ----------------------------------------------------------------------------------------
    def get(self, url: str) -> None:
        self._call("POST", self._s("/url"), {"url": url})

    def execute(self, script: str, *args: Any) -> Any:
        """Run `script` (a function body: use `return`) in the page; elements come back as references."""
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def find(self, css: str) -> dict[str, str]:
        return self._call("POST", self._s("/element"), {"using": "css selector", "value": css})

    def find_all(self, css: str) -> list[dict[str, str]]:
        return self._call("POST", self._s("/elements"), {"using": "css selector", "value": css})

    def click(self, css_or_element: str | dict[str, str]) -> None:
        e = self.find(css_or_element) if isinstance(css_or_element, str) else css_or_element
        self._call("POST", self._s(f"/element/{e[ELEMENT_KEY]}/click"))

    def clear(self, css: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)[ELEMENT_KEY]}/clear"))

    def type(self, css: str, text: str) -> None:
        self._call("POST", self._s(f"/element/{self.find(css)[ELEMENT_KEY]}/value"), {"text": text})

    def text(self, css: str) -> str:
        return self._call("GET", self._s(f"/element/{self.find(css)[ELEMENT_KEY]}/text"))

    def screenshot(self, path: str | Path) -> Path:
        Path(path).write_bytes(base64.b64decode(self._call("GET", self._s("/screenshot"))))
        return Path(path)

    def console_errors(self) -> list[str]:
        """Errors the page reported (window.onerror is installed by `watch_errors`)."""
        return self.execute("return window.__errors || []") or []

    def watch_errors(self) -> None:
        self.execute(
            "window.__errors = window.__errors || [];"
            "window.addEventListener('error', e => window.__errors.push(String(e.message)));"
            "window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));"
        )

    def wait_for(self, script: str, *args: Any, timeout: float = 10.0, what: str = "") -> Any:
        """Poll `script` (a function body returning a value) until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.execute(script, *args)
            if last:
                return last
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what or script!r} (last value {last!r})")

    def driver_log(self) -> str:
        try:
            self._log.flush()
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-3000:]
        except (OSError, ValueError):
            return ""

    def quit(self) -> None:
        if self.session is not None:
            try:
                self._call("DELETE", self._s(""), timeout=15)
            except (WebDriverError, OSError):
                pass
            self.session = None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.quit()
