"""The one place that imports ultralytics and torch: building the trainer and its
callbacks, argument mapping, resume checkpoints, exports, catalogue facts and
ultralytics' own dataset checks. Only worker processes import it."""
