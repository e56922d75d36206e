"""Development-only tools: the one-machine stack behind ``scripts/run`` and
``scripts/test``, and the local Stripe emulator. Not part of the installed
package; run them from the repository root (``python -m devtools.<name>``)."""
