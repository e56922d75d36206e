"""``manage.py install_weights`` against a local HTTP server standing in for GitHub's
release API and its download host."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.training.weights.helpers import write_yolo_checkpoint


class ReleaseServer:
    """Serves ``/release.json`` (assets with digests) and ``/download/<name>``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.digests: dict[str, str | None] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/release.json":
                    body = json.dumps({"tag_name": "v8.4.0", "assets": server.assets()}).encode()
                elif self.path.startswith("/download/") and self.path[10:] in server.files:
                    body = server.files[self.path[10:]]
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, name: str, data: bytes, digest: str | None = "correct") -> None:
        self.files[name] = data
        self.digests[name] = f"sha256:{hashlib.sha256(data).hexdigest()}" if digest == "correct" else digest

    def assets(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "size": len(data),
                "browser_download_url": f"{self.url}/download/{name}",
                "digest": self.digests[name],
            }
            for name, data in self.files.items()
        ]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def release(settings: SettingsWrapper, tmp_path: Path) -> Iterator[ReleaseServer]:
    server = ReleaseServer()
    settings.WEIGHTS_DIR = tmp_path / "weights"
    settings.WEIGHTS_RELEASE_URL = f"{server.url}/release.json"
    yield server
    server.close()


def weights_dir_contents(settings: SettingsWrapper) -> list[str]:
    folder = Path(settings.WEIGHTS_DIR)
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_it_installs_checked_weights_rebuilt_by_our_code(
    release: ReleaseServer, settings: SettingsWrapper, tmp_path: Path
) -> None:
    release.add("yolo11n.pt", write_yolo_checkpoint(tmp_path / "yolo11n.pt", "yolo11n").read_bytes())

    call_command("install_weights", "yolo11n")

    assert weights_dir_contents(settings) == ["yolo11n.pt"]  # no temporary files left
    installed = torch.load(Path(settings.WEIGHTS_DIR) / "yolo11n.pt", weights_only=False)
    assert installed["hubsite"] == {"architecture": "yolo11n", "sanitised": True}
    assert len(installed["model"].names) == 80


def test_source_points_it_at_another_server(release: ReleaseServer, settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.WEIGHTS_RELEASE_URL = "http://127.0.0.1:9/never-used"
    release.add("yolov8n.pt", write_yolo_checkpoint(tmp_path / "v8.pt", "yolov8n").read_bytes())

    call_command("install_weights", "yolov8n", "--source", f"{release.url}/release.json")

    assert weights_dir_contents(settings) == ["yolov8n.pt"]


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(
    release: ReleaseServer, settings: SettingsWrapper, tmp_path: Path
) -> None:
    data = write_yolo_checkpoint(tmp_path / "yolo11n.pt", "yolo11n").read_bytes()
    release.add("yolo11n.pt", data, digest=f"sha256:{hashlib.sha256(b'other bytes').hexdigest()}")

    with pytest.raises(CommandError, match="checksum mismatch"):
        call_command("install_weights", "yolo11n")

    assert weights_dir_contents(settings) == []


def test_an_asset_without_a_checksum_is_not_installed(
    release: ReleaseServer, settings: SettingsWrapper, tmp_path: Path
) -> None:
    release.add("yolo11n.pt", write_yolo_checkpoint(tmp_path / "yolo11n.pt", "yolo11n").read_bytes(), digest=None)

    with pytest.raises(CommandError, match=r"gives no sha256 checksum for yolo11n\.pt"):
        call_command("install_weights", "yolo11n")

    assert weights_dir_contents(settings) == []


def test_weights_of_another_architecture_under_the_name_are_refused(
    release: ReleaseServer, settings: SettingsWrapper, tmp_path: Path
) -> None:
    release.add("yolo11n.pt", write_yolo_checkpoint(tmp_path / "s.pt", "yolo11s").read_bytes())

    with pytest.raises(CommandError, match=r"yolo11n\.pt is not yolo11n weights we can use"):
        call_command("install_weights", "yolo11n")

    assert weights_dir_contents(settings) == []


def test_an_unreachable_server_is_a_plain_error(settings: SettingsWrapper, tmp_path: Path) -> None:
    settings.WEIGHTS_DIR = tmp_path / "weights"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(CommandError, match=r"Could not reach http://127\.0\.0\.1:\d+/release\.json .*online"):
        call_command("install_weights", "yolo11n", "--source", f"http://127.0.0.1:{port}/release.json")

    assert weights_dir_contents(settings) == []


def test_an_unknown_architecture_is_refused_before_any_download(release: ReleaseServer) -> None:
    with pytest.raises(CommandError, match="Unknown architecture: yolo99n"):
        call_command("install_weights", "yolo99n")


def test_an_architecture_missing_from_the_release_is_named(release: ReleaseServer, settings: SettingsWrapper) -> None:
    with pytest.raises(CommandError, match=r"The release has no yolo26n\.pt"):
        call_command("install_weights", "yolo26n")

    assert weights_dir_contents(settings) == []
