"""The web process never imports the worker's code: loading every URL pattern (so
every view module) and every template tag library leaves ultralytics, torch,
training.yolo and the training runner unimported. (The broker's middleware list,
shared by every process, names the worker-presence middleware in training.engine:
that module is light and only acts inside a worker.) The import contracts in
pyproject.toml check the static imports; this checks a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import json, sys
import django
django.setup()
from django.template import engines
from django.urls import get_resolver
import hubsite.wsgi

def walk(patterns):
    for pattern in patterns:
        walk(getattr(pattern, "url_patterns", []))

walk(get_resolver().url_patterns)
engines["django"].engine.template_libraries
forbidden = ("ultralytics", "torch", "training.yolo", "training.engine.runner")
prefixes = tuple(name + "." for name in forbidden)
print(json.dumps(sorted(name for name in sys.modules if name in forbidden or name.startswith(prefixes))))
"""


def test_serving_pages_imports_no_training_code() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == [], f"the web process imported worker code: {imported[:10]}"
