"""Training's pages, one module per part of the site: ``home``, ``datasets``,
``models`` (and their weights), ``train`` (the wizard's step 3 and the live Train
tab) and ``exports``. ``panels`` and ``charts`` are read-only view models the
pages and the ``train_panel`` template tag render. Every view receives an
``AuthenticatedRequest`` and fetches objects through ``hubsite.http.owned_or_404``."""
