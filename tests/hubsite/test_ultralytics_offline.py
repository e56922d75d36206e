from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

PROBE = """
import django, os
django.setup()
from pathlib import Path
from django.conf import settings
import ultralytics.utils as u
from training.yolo.trainer import disable_settings_sync
disable_settings_sync()
fonts = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
print(u.ONLINE, u.AUTOINSTALL, u.SETTINGS["sync"], (fonts / "Arial.ttf").stat().st_size > 0,
      (fonts / "Arial.Unicode.ttf").exists(), str(settings.DATA_DIR) in os.environ["YOLO_CONFIG_DIR"],
      str(settings.DATA_DIR) in os.environ["MPLCONFIGDIR"])
"""


def test_every_django_process_imports_ultralytics_offline(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "MPLCONFIG", "XDG_CACHE"))}
    env.update(HUBSITE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="hubsite.settings")
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["False", "False", "False", "True", "True", "True", "True"]
