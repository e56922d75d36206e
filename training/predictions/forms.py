"""The Predict tab's inputs: the thresholds, and the picture or validation picture."""

from __future__ import annotations

from django import forms

from training.predictions.services import DEFAULT_CONF, DEFAULT_IOU


class ThresholdsForm(forms.Form):
    conf = forms.FloatField(label="Confidence", min_value=0.001, max_value=1.0, initial=DEFAULT_CONF, required=False)
    iou = forms.FloatField(label="IoU", min_value=0.01, max_value=1.0, initial=DEFAULT_IOU, required=False)

    def thresholds(self) -> tuple[float, float]:
        """(conf, iou) once valid; the defaults for any left out."""
        conf = self.cleaned_data.get("conf")
        iou = self.cleaned_data.get("iou")
        return (DEFAULT_CONF if conf is None else conf, DEFAULT_IOU if iou is None else iou)

    def error_text(self) -> str:
        problems = [f"{self.fields[name].label}: {' '.join(map(str, errors))}" for name, errors in self.errors.items()]
        return " ".join(problems)
