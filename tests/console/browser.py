"""A real headless Chromium, driven over the DevTools protocol, for the console's tests.

Debian's ``chromium`` is started with ``--remote-debugging-pipe``: it reads DevTools
commands on fd 3 and writes answers and events on fd 4, each a JSON message ended by a NUL
byte. That needs no WebSocket client and no browser download: nothing beyond the standard
library and the distribution's browser. ``os.posix_spawn`` places the two pipe ends on fds
3 and 4 in the child (safe in a threaded test process, unlike ``preexec_fn``) and starts
the browser in its own session, so closing it can also end any helper process it left.

:class:`Browser` drives one page the way a person does: it navigates, reads the DOM,
picks from a ``<select>``, types, and clicks with real mouse events at the element's
position (after checking the element is what is actually under the pointer). JavaScript
exceptions, console errors and CSP violations are collected in :attr:`Browser.errors`, and
responses with an error status in :attr:`Browser.failed_loads`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from tests.support.eventually import GiveUp, eventually, eventually_sync

CHROMIUM = Path(os.environ.get("SIGNGATE_CHROMIUM", "/usr/bin/chromium"))
HOW_TO_ENABLE = (
    f"the console's browser test needs Chromium at {CHROMIUM}: install Debian's package with "
    "`apt-get install chromium` (or point SIGNGATE_CHROMIUM at a Chromium binary)"
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,1000",
    "--remote-debugging-pipe",
)


def chromium_available() -> bool:
    """True when the browser binary is installed and executable."""
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


class BrowserError(Exception):
    """The browser answered a command with an error, went away, or a wait ran out."""


def _spawn(profile_dir: Path) -> tuple[int, int, int]:
    """Start the browser; its pid, the fd to write commands to, the fd to read answers from."""
    profile_dir.mkdir(parents=True, exist_ok=True)
    commands_read, commands_write = os.pipe()
    answers_read, answers_write = os.pipe()
    child_read, child_write = _high_fd(commands_read), _high_fd(answers_write)
    argv = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile_dir}", "about:blank"]
    log = profile_dir / "chromium.log"
    try:
        pid = os.posix_spawn(
            str(CHROMIUM),
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, child_read, 3),
                (os.POSIX_SPAWN_DUP2, child_write, 4),
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    except BaseException:
        for fd in (commands_write, answers_read):
            os.close(fd)
        raise
    finally:
        os.close(child_read)
        os.close(child_write)
    return pid, commands_write, answers_read


def _end_and_reap(pid: int, grace: float) -> None:
    """Give the browser ``grace`` seconds to exit, end its process group, reap it."""
    # WNOWAIT: the exited browser stays a zombie, so its pid (the group's id) cannot be
    # reused before the group kill below. Past the grace it is killed, exited or not.
    with contextlib.suppress(AssertionError):
        eventually_sync(
            lambda: os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None,
            within=grace,
            what="the browser to exit",
        )
    # Helpers (zygote, renderers) share the browser's process group; none may outlive it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _high_fd(fd: int) -> int:
    # Out of the way of 3 and 4, so placing one end cannot overwrite the other.
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One Chromium process with one page (a flattened DevTools session)."""

    def __init__(self, pid: int, to_browser: int, from_browser: int) -> None:
        self.pid = pid
        self._write_fd = to_browser
        self._read_fd = from_browser
        self._buffer = b""
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._closed = False
        self._reaped = False
        self.session_id: str | None = None
        self.errors: list[str] = []
        self.failed_loads: list[str] = []
        self._loop = asyncio.get_running_loop()
        os.set_blocking(from_browser, False)
        self._loop.add_reader(from_browser, self._on_readable)

    @classmethod
    async def launch(cls, profile_dir: Path) -> Browser:
        """Start Chromium with a fresh profile in ``profile_dir`` and open a blank page."""
        if not chromium_available():
            raise BrowserError(HOW_TO_ENABLE)
        pid, commands_write, answers_read = await asyncio.to_thread(_spawn, profile_dir)
        browser = cls(pid, commands_write, answers_read)
        try:
            target = await browser.send("Target.createTarget", {"url": "about:blank"}, page=False)
            attached = await browser.send(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                page=False,
            )
            browser.session_id = str(attached["sessionId"])
            for domain in ("Page", "Runtime", "Log"):
                await browser.send(f"{domain}.enable")
        except BaseException:
            await browser.close()
            raise
        return browser

    # --- the protocol ------------------------------------------------------------------------

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, page: bool = True
    ) -> dict[str, Any]:
        """Send one command (to the page's session unless ``page=False``); its result."""
        if self._closed:
            raise BrowserError(f"{method}: the browser is closed")
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            if self.session_id is None:
                raise BrowserError(f"{method}: no page is attached")
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[self._next_id] = future
        data = json.dumps(message).encode() + b"\0"
        while data:
            try:
                data = data[os.write(self._write_fd, data) :]
            except BlockingIOError:
                await self._writable()
        answer = await asyncio.wait_for(future, timeout=30)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def _writable(self) -> None:
        """Until the DevTools pipe can take more bytes (the browser reads slowly)."""
        ready: asyncio.Future[None] = self._loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        self._loop.add_writer(self._write_fd, wake)
        try:
            await ready
        finally:
            self._loop.remove_writer(self._write_fd)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._read_fd, 1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self._fail_all(BrowserError("the browser closed its DevTools pipe"))
            return
        self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            self._dispatch(json.loads(raw))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            future = self._pending.pop(int(message["id"]), None)
            if future is not None and not future.done():
                future.set_result(message)
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append("console.error: " + " ".join(args))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            if entry.get("source") == "network":
                self.failed_loads.append(f"{entry.get('text')} {entry.get('url', '')}")
            else:
                self.errors.append(f"{entry.get('source')}: {entry.get('text')}")

    def _fail_all(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    # --- what a person does ------------------------------------------------------------------

    async def goto(self, url: str) -> None:
        """Open ``url`` and wait for the document to finish loading."""
        answer = await self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"cannot open {url}: {answer['errorText']}")
        await self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        answer = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise BrowserError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer.get("result", {}).get("value")

    async def wait_for(self, expression: str, *, what: str) -> Any:
        """Poll until ``expression`` is truthy; its value. Raises naming ``what`` otherwise."""

        async def value() -> Any:
            if self._closed:
                raise GiveUp(f"the browser closed while waiting for {what}")
            return await self.evaluate(expression)

        return await eventually(value, interval=0.1, what=what)

    async def text(self, selector: str) -> str:
        """The rendered text of the first element matching ``selector`` ("" if none)."""
        value = await self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''"
        )
        return str(value)

    async def select(self, selector: str, value: str) -> None:
        """Pick ``value`` in a ``<select>``, as choosing it with the mouse does."""
        picked = await self.evaluate(
            f"""(() => {{
              const s = document.querySelector({json.dumps(selector)});
              if (!s || ![...s.options].some((o) => o.value === {json.dumps(value)})) return false;
              s.focus();
              s.value = {json.dumps(value)};
              s.dispatchEvent(new Event('input', {{bubbles: true}}));
              s.dispatchEvent(new Event('change', {{bubbles: true}}));
              return true;
            }})()"""
        )
        if not picked:
            raise BrowserError(f"{selector} has no option {value!r}")

    async def type(self, selector: str, text: str) -> None:
        """Focus a text field and type ``text`` into it."""
        await self.click(selector)
        await self.send("Input.insertText", {"text": text})

    async def click(self, selector: str) -> None:
        """A left click with real mouse events at the centre of the element."""
        where = await self.evaluate(
            f"""(() => {{
              const e = document.querySelector({json.dumps(selector)});
              if (!e) return {{error: 'no element'}};
              e.scrollIntoView({{block: 'center', inline: 'center'}});
              const r = e.getBoundingClientRect();
              const x = r.left + r.width / 2, y = r.top + r.height / 2;
              const hit = document.elementFromPoint(x, y);
              if (!hit || !(hit === e || e.contains(hit))) return {{error: 'covered'}};
              if (e.disabled) return {{error: 'disabled'}};
              return {{x, y}};
            }})()"""
        )
        if not isinstance(where, dict) or "error" in where:
            problem = where.get("error") if isinstance(where, dict) else where
            raise BrowserError(f"cannot click {selector}: {problem}")
        point = {"x": where["x"], "y": where["y"]}
        await self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", **point})
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "button": "left", "buttons": 1, "clickCount": 1, **point},
            )

    async def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = await self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
        )
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        return path

    # --- the end -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Ask the browser to quit, wait for it, and make sure nothing of it is left."""
        if not self._closed:
            with contextlib.suppress(BrowserError, TimeoutError, OSError):
                await asyncio.wait_for(self.send("Browser.close", page=False), timeout=5)
            self._closed = True
            self._loop.remove_reader(self._read_fd)
            self._fail_all(BrowserError("the browser is closed"))
            os.close(self._write_fd)
            os.close(self._read_fd)
        if self._reaped:
            return
        await asyncio.to_thread(_end_and_reap, self.pid, 10.0)
        self._reaped = True


def copy_if_asked(screenshot: Path) -> None:
    """Copy the screenshot to ``$CONSOLE_SCREENSHOT`` when set (to look at it)."""
    target = os.environ.get("CONSOLE_SCREENSHOT")
    if target:
        shutil.copyfile(screenshot, target)
