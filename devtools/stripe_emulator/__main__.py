"""Start the local Stripe emulator on 127.0.0.1.

    python -m devtools.stripe_emulator --data-dir .data/stripe [--port 0] [--from-scratch]

It never binds another interface (localstripe's own CLI binds every one) and keeps
its state in ``<data-dir>/localstripe.pickle`` (not localstripe's fixed /tmp path).
``--port 0`` picks a free port. Once it listens it prints one line,
``stripe emulator listening on http://127.0.0.1:PORT``, and writes the same URL to
``<data-dir>/url``. SIGTERM and Ctrl-C stop it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import socket
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from localstripe import resources, server

from devtools.stripe_emulator import checkout, receipts, subscriptions

LOOPBACK = "127.0.0.1"


def use_state_file(path: Path) -> None:
    """Point localstripe's store at ``path``, written atomically on every change."""

    def dump_to_disk(self: resources.Store) -> None:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".state-", delete=False) as handle:
            pickle.dump(dict(self), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(handle.name, path)

    def try_load_from_disk(self: resources.Store) -> None:
        with contextlib.suppress(FileNotFoundError):
            with path.open("rb") as handle:
                saved = pickle.load(handle)  # noqa: S301 - our own state file, in our own data dir
            dict.clear(self)
            dict.update(self, saved)

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = try_load_from_disk


def build_app() -> web.Application:
    app: web.Application = server.app
    checkout.install(app)
    receipts.install(app)
    subscriptions.install(app)  # its middleware answers /v1/subscriptions etc. before localstripe's routes
    return app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="where the emulator keeps its state")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--from-scratch", action="store_true", help="ignore the saved state")
    args = parser.parse_args(argv)

    data_dir: Path = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    use_state_file(data_dir / "localstripe.pickle")
    if not args.from_scratch:
        resources.store.try_load_from_disk()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, args.port))
    url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    (data_dir / "url").write_text(url + "\n")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(f"stripe emulator listening on {url}", flush=True)
    web.run_app(build_app(), sock=sock, print=None, access_log=logging.getLogger("aiohttp.access"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
