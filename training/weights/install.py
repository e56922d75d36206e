"""Installing official Ultralytics weights into ``WEIGHTS_DIR`` (``manage.py install_weights``).

The release is read from GitHub's release API (``WEIGHTS_RELEASE_URL``, or the
command's ``--source``): each asset has a ``browser_download_url`` and a ``digest``
(``sha256:<hex>``). A file is installed only when

1. its asset has a sha256 digest (no checksum, no install),
2. the downloaded bytes match it,
3. the safe loader (``training.yolo.checkpoints``) reads it as the architecture its
   name says, task included,

and what lands in ``WEIGHTS_DIR/<architecture>.pt`` is the checkpoint the safe
loader rebuilt from it, moved into place atomically. Any failure leaves nothing
behind: every download goes to a temporary folder inside ``WEIGHTS_DIR`` that is
removed on the way out.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from training.weights.architectures import task_of

NETWORK_TIMEOUT_SECONDS = 60
MAX_RELEASE_BYTES = 16 * 1024**2
MAX_WEIGHTS_BYTES = 4 * 1024**3
CHUNK = 1024 * 1024
SHA256 = re.compile(r"^sha256:([0-9a-f]{64})$")


class InstallError(Exception):
    """Installing failed; the message says why in plain words, and nothing was installed."""


@dataclass(frozen=True)
class ReleaseAsset:
    name: str
    url: str
    sha256: str  # "" when the release gives no sha256 digest
    size: int | None


def read_release(url: str) -> dict[str, ReleaseAsset]:
    """The release's assets by file name."""
    body = _get(url, limit=MAX_RELEASE_BYTES, accept="application/vnd.github+json")
    try:
        release = json.loads(body)
        assets = release["assets"]
        if not isinstance(assets, list):
            raise TypeError("assets is not a list")
        result: dict[str, ReleaseAsset] = {}
        for asset in assets:
            match = SHA256.match(str(asset.get("digest") or "").lower())
            size = asset.get("size")
            result[str(asset["name"])] = ReleaseAsset(
                name=str(asset["name"]),
                url=str(asset["browser_download_url"]),
                sha256=match.group(1) if match else "",
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            )
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise InstallError(f"{url} did not answer with a GitHub release (JSON with assets): {error}.") from error
    return result


def install(architecture: str, assets: Mapping[str, ReleaseAsset], weights_dir: Path) -> Path:
    """Download, verify and install one architecture's weights; returns the installed path."""
    asset = assets.get(f"{architecture}.pt")
    if asset is None:
        raise InstallError(f"The release has no {architecture}.pt; nothing installed.")
    if not asset.sha256:
        raise InstallError(f"The release gives no sha256 checksum for {asset.name}; without one it is not installed.")
    if asset.size is not None and asset.size > MAX_WEIGHTS_BYTES:
        raise InstallError(f"{asset.name} is {asset.size} bytes, more than weights should be; not installed.")
    weights_dir.mkdir(parents=True, exist_ok=True)
    target = weights_dir / f"{architecture}.pt"
    with tempfile.TemporaryDirectory(dir=weights_dir, prefix=".install-") as work:
        downloaded = Path(work) / "download.pt"
        digest = _download(asset.url, downloaded)
        if digest != asset.sha256:
            raise InstallError(
                f"{asset.name}: checksum mismatch (expected sha256 {asset.sha256}, got {digest}); not installed."
            )
        sanitised = Path(work) / "sanitised.pt"
        _check_and_rebuild(downloaded, sanitised, architecture)
        sanitised.replace(target)
    return target


def _check_and_rebuild(downloaded: Path, sanitised: Path, architecture: str) -> None:
    from training.yolo.checkpoints import CheckpointRefused, sanitise  # loads torch: only when installing

    try:
        facts = sanitise(downloaded, sanitised, candidates=[architecture])
    except CheckpointRefused as error:
        raise InstallError(
            f"{architecture}.pt is not {architecture} weights we can use: {error} Not installed."
        ) from error
    if facts.architecture != architecture or facts.task != task_of(architecture):
        raise InstallError(f"{architecture}.pt holds {facts.architecture} ({facts.task}); not installed.")


def _opener_request(url: str, accept: str) -> urllib.request.Request:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise InstallError(f"{url} is not an http(s) address.")
    headers = {"Accept": accept, "User-Agent": "hubsite-install-weights"}
    return urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only, checked above


def _get(url: str, *, limit: int, accept: str) -> bytes:
    try:
        with urllib.request.urlopen(_opener_request(url, accept), timeout=NETWORK_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) only, checked above
            body: bytes = response.read(limit + 1)
    except urllib.error.HTTPError as error:
        raise InstallError(f"{url} answered HTTP {error.code} ({error.reason}).") from error
    except (urllib.error.URLError, OSError) as error:
        raise InstallError(_unreachable(url, error)) from error
    if len(body) > limit:
        raise InstallError(f"{url} answered with more than {limit} bytes.")
    return body


def _download(url: str, target: Path) -> str:
    """Stream ``url`` into ``target``; returns the sha256 of what arrived."""
    digest = hashlib.sha256()
    received = 0
    try:
        with (
            urllib.request.urlopen(  # noqa: S310 - http(s) only, checked in _opener_request
                _opener_request(url, "application/octet-stream"), timeout=NETWORK_TIMEOUT_SECONDS
            ) as response,
            target.open("wb") as sink,
        ):
            while chunk := response.read(CHUNK):
                received += len(chunk)
                if received > MAX_WEIGHTS_BYTES:
                    raise InstallError(f"{url} sent more than {MAX_WEIGHTS_BYTES} bytes; not installed.")
                digest.update(chunk)
                sink.write(chunk)
    except urllib.error.HTTPError as error:
        raise InstallError(f"Downloading {url} failed: HTTP {error.code} ({error.reason}).") from error
    except (urllib.error.URLError, OSError) as error:
        raise InstallError(_unreachable(url, error)) from error
    return digest.hexdigest()


def _unreachable(url: str, error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    return (
        f"Could not reach {url} ({reason}). install_weights needs this machine to be online, "
        "or --source pointing at a server it can reach. Nothing was installed."
    )
