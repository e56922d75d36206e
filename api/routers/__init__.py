"""One router per resource; each endpoint calls the same service functions as the web."""
