"""Make every process that may import ultralytics safe to run offline.

Ultralytics probes the network, checks PyPI for updates, sends analytics,
pip-installs missing packages and downloads Arial.ttf for its plots unless told
otherwise. This module must run before ultralytics is first imported; settings.py
calls it, so web, workers and management commands all get it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def configure(data_dir: Path) -> Path:
    """Point ultralytics' and matplotlib's caches into ``data_dir`` and switch off
    everything that reaches the network. Returns the ultralytics config dir."""
    config_dir = data_dir / "ultralytics"
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "false"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(data_dir / "cache" / "matplotlib"))
    os.environ.setdefault("XDG_CACHE_HOME", str(data_dir / "cache"))
    # Keep the platform-reporting callback off: it only activates with these set.
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    os.environ.pop("ULTRALYTICS_PLATFORM_URL", None)
    _install_fonts(config_dir / "Ultralytics")
    return config_dir


def _install_fonts(font_dir: Path) -> None:
    """Ultralytics wants Arial; without it, dataset checks download it from GitHub.
    matplotlib ships DejaVuSans, which serves the same purpose."""
    if all((font_dir / name).exists() for name in FONT_NAMES):
        return
    source = _bundled_font()
    if source is None:
        return
    font_dir.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = font_dir / name
        if not target.exists():
            temporary = target.with_suffix(".tmp")
            shutil.copyfile(source, temporary)
            temporary.replace(target)


def _bundled_font() -> Path | None:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib comes with ultralytics
        return None
    font = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
    return font if font.exists() else None
