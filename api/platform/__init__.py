"""The server side of the protocol ultralytics speaks to a training platform
(``ultralytics/utils/callbacks/platform.py``): ``ULTRALYTICS_PLATFORM_URL`` pointed at
this site and a personal API key make an unmodified ``yolo train`` report here."""
