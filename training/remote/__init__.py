"""Remote training: ``yolo train`` on the user's own machine, reporting to a model page
through the protocol of ultralytics' platform callbacks (docs/api.md). The services
(``runs``, ``console``, ``uploads``, ``silence``); the HTTP side is ``api.platform.remote``."""
