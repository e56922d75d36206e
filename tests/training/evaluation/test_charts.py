"""The evaluation's curves render their lines and legend in Python: class names (from
the user's data.yaml) are escaped there."""

from __future__ import annotations

from training.views.evaluation_charts import curve_charts


def test_curve_lines_and_legend_escape_class_names() -> None:
    name = '<img src=x onerror="alert(1)">'
    curves = {"pr": {"x": [0.0, 0.5, 1.0], "all": [1.0, 0.5, 0.0], "classes": {name: [1.0, 0.4, 0.0]}}}

    (chart,) = curve_charts(curves, [name])

    for html in (str(chart.polylines), str(chart.legend)):
        assert "<img" not in html
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert str(chart.polylines).count("<polyline") == 2
    assert str(chart.polylines).rindex("All classes") > str(chart.polylines).index("&lt;img")  # drawn on top
