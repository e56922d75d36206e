"""The project's settings plus the periodic probe app, for worker processes in tests."""

from hubsite.settings import *  # noqa: F403
from hubsite.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.hubsite.periodic_probe.PeriodicProbeConfig"]
