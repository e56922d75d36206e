"""Billing announces a paid, refunded or disputed Pay Now with signals; training's
receivers must be connected in every process, workers included (the light worker
reconciles payments and never loads the URLconf)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import BASE_DIR

CHILD = """
import django
django.setup()
from billing.signals import pay_now_paid, pay_now_taken_back
print(pay_now_paid.has_listeners(), pay_now_taken_back.has_listeners())
"""


def test_a_process_that_only_sets_up_django_has_the_pay_now_receivers() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split() == ["True", "True"]
