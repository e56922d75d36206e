"""File names for downloads. User text never becomes a path or a storage key (those
use uids); it only appears, reduced to a slug, in a download's suggested name."""

from __future__ import annotations

from django.utils.text import slugify

MAX_STEM = 80


def download_filename(name: str, ending: str, *, fallback: str) -> str:
    """``name`` as a slug of letters, digits, ``-`` and ``_`` (any script), then ``ending``
    (e.g. ``-best.pt``); ``fallback`` when nothing of the name survives."""
    stem = slugify(name, allow_unicode=True)[:MAX_STEM].strip("-_") or fallback
    return f"{stem}{ending}"
