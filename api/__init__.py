"""The site's programmatic doors: the REST API under ``/api/v1/`` (personal API keys,
django-ninja) and the protocol ultralytics itself speaks to a training platform
(``api/platform/``). Both call the same services as the web pages."""
