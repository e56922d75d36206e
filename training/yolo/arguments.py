"""ultralytics' own type and range checks of training arguments (``check_cfg``).

Importing ``ultralytics.cfg`` loads torch (seconds, hundreds of MB), so the web
process calls this only for the custom arguments a user typed on the model form,
after the platform's own checks (``training.catalogue.validate_train_args``)."""

from __future__ import annotations

from typing import Any

from ultralytics.cfg import check_cfg


def check_value(key: str, value: Any) -> Any:
    """The value as ultralytics will use it; raises TypeError or ValueError with
    ultralytics' own message when it would refuse it."""
    single = {key: value}
    check_cfg(single, hard=True)
    return single[key]
