"""`cbir serve` (parse, bind, start; the server itself is cbir.web)."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import webbrowser

import click
import uvicorn

from cbir.actions import watching
from cbir.actions.progress import Progress
from cbir.cli.common import echo_err, index_option, model_option, runtime_option, setup_logging, weights_option
from cbir.cli.watch import batch_line, watch_options
from cbir.config import resolve_index_dir
from cbir.errors import CbirError, UsageError
from cbir.web.app import create_app
from cbir.web.security import Guard, is_loopback, new_token
from cbir.web.server import Server


@click.command("serve")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address needs an access token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--token", default=None, metavar="TOKEN",
              help="Access token every request must carry (default: none on loopback, else a new one, printed).")
@click.option("--read-only", is_flag=True, help="Browse and search only: refuse every action that moves files.")
@click.option("--open", "open_browser", is_flag=True, help="Open the library in the default web browser.")
@click.option("--max-upload-mb", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Largest picture accepted for a search, in MiB.")
@click.option("--watch", "watch", is_flag=True,
              help="Also keep the index current as files change under the indexed folders (as `cbir watch`).")
@watch_options
@model_option
@weights_option
@runtime_option
def serve_cmd(index_dir: str | None, host: str, port: int, token: str | None, read_only: bool, open_browser: bool,
              max_upload_mb: int, watch: bool, settle_s: float, release_after_s: float,
              forget_after_s: float | None, model: str | None, weights: str | None, runtime: str | None) -> None:
    """Browse, search, clean and de-duplicate the index in a web browser, with an HTTP API under /api/.

    The model loads once, so searches answer warm. Files are served by index id only, never by a path
    from a request. Stop with Ctrl-C.
    """
    setup_logging()
    if not token and not is_loopback(host):
        token = new_token()
    sock = _bind(host, port)
    index_path = resolve_index_dir(index_dir)
    server = Server.start(index_path, Guard(host, token), model=model, weights=weights, runtime=runtime,
                          read_only=read_only, max_upload_bytes=max_upload_mb << 20)
    server.make_thumbnails_in_background()
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}/" + (f"?token={token}" if token else "")
    echo_err(f"cbir: serving {index_path} at {url}" + (" (read-only)" if read_only else "") + "; Ctrl-C stops")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, (url,)).start()
    stop_watching = threading.Event()
    if watch:
        threading.Thread(target=_watch, args=(index_path, settle_s, release_after_s, forget_after_s, model, weights,
                                              runtime, stop_watching), name="cbir-watch", daemon=True).start()
    config = uvicorn.Config(create_app(server), log_level="warning", access_log=False, timeout_graceful_shutdown=5)

    class Uvicorn(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            await super().shutdown(sockets)
            # A job moving files finishes (each move is journaled anyway) before uvicorn re-raises the signal.
            await asyncio.to_thread(server.close)

    try:
        Uvicorn(config).run(sockets=[sock])
    finally:
        stop_watching.set()
        sock.close()


def _watch(index_path, settle_s: float, release_after_s: float, forget_after_s: float | None, model: str | None,
           weights: str | None, runtime: str | None, stop: threading.Event) -> None:
    """`serve --watch`: the watcher on a thread of the server; a new generation shows on the next search."""
    try:
        watching.watch(index_path, [], model=model, weights=weights, runtime=runtime, settle_s=settle_s,
                       release_after_s=release_after_s, forget_after_s=forget_after_s,
                       progress=Progress(note=lambda text: echo_err(f"cbir: watch: {text}")),
                       on_batch=lambda summary: echo_err(batch_line(summary).replace("cbir: ", "cbir: watch: ", 1)),
                       stop=stop)
    except CbirError as exc:
        echo_err(f"cbir: watch stopped: {exc}")


def _bind(host: str, port: int) -> socket.socket:
    """Listen before anything slow loads, so that a taken port is said at once, in one line."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host!r}: {exc.strerror}") from None
    # IPPROTO_TCP named outright: asyncio turns Nagle's algorithm off only on sockets that say they are TCP,
    # and with it on, every response after a connection's first waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use: choose another --port") from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock
