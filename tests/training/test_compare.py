"""Comparing models side by side: picking them, the refusals, the best value of each
row, what changed between runs, the charts, owner scoping and a constant number of
queries. Epochs are charged through the real billing functions; evaluations are rows
as the evaluation job writes them (tests/training/compare_runs.py)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from hubsite.models import User
from tests.factories import fund
from tests.training.compare_runs import detect_metrics, evaluate, make_run
from training.comparison import compare_models
from training.models import ModelEvaluation, YoloModel

pytestmark = pytest.mark.django_db

URL = "/models/compare/"


@pytest.fixture
def funded(user: User) -> User:
    fund(user, 50_000_000)
    return user


@pytest.fixture
def pair(funded: User) -> tuple[YoloModel, YoloModel]:
    """ "small-lr" ends better on every accuracy measure and loss; "big-lr" trained
    longer per epoch and used another learning rate and image size."""
    worse = make_run(
        funded, "big-lr", [detect_metrics(0.2), detect_metrics(0.4)], epoch_ms=3_000, train_args={"lr0": 0.05}
    )
    better = make_run(
        funded,
        "small-lr",
        [detect_metrics(0.3), detect_metrics(0.9), detect_metrics(0.6)],
        train_args={"lr0": 0.01, "imgsz": 128},
    )
    return worse, better


def query(*models: YoloModel | uuid.UUID | str, **extra: str) -> str:
    picked = "&".join(f"m={getattr(m, 'uid', m)}" for m in models)
    return f"{URL}?{picked}" + "".join(f"&{key}={value}" for key, value in extra.items())


def row_html(body: str, label: str) -> str:
    """The table row whose header cell starts with ``label`` (the first one)."""
    match = re.search(rf'<tr[^>]*><th scope="row">{re.escape(label)}[ <].*?</tr>', body, re.S)
    assert match, f"no row {label!r}"
    return match.group(0)


def cells(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)


# --- picking -------------------------------------------------------------------------------


def test_the_model_list_offers_a_compare_form(owner_client: Client, pair: tuple[YoloModel, YoloModel]) -> None:
    body = owner_client.get("/models/").content.decode()
    assert f'<form method="get" action="{URL}"' in body
    for model in pair:
        assert f'<input type="checkbox" name="m" value="{model.uid}" aria-label="Compare {model.name}">' in body
    assert '<button type="submit">Compare</button>' in body


def test_the_model_page_link_ticks_that_model_on_the_list(
    owner_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    worse, better = pair
    page = owner_client.get(f"/models/{better.uid}/").content.decode()
    assert f'href="/models/?compare={better.uid}#models"' in page
    body = owner_client.get(f"/models/?compare={better.uid}").content.decode()
    assert f'value="{better.uid}" aria-label="Compare small-lr" checked>' in body
    assert f'value="{worse.uid}" aria-label="Compare big-lr">' in body


def test_a_single_model_gets_no_compare_form(owner_client: Client, funded: User) -> None:
    make_run(funded, "alone", [detect_metrics(0.5)])
    body = owner_client.get("/models/").content.decode()
    assert "alone" in body
    assert 'name="m"' not in body


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("picked", "status", "message"),
    [
        (lambda a, b: [], 400, "Pick at least 2 different models to compare."),
        (lambda a, b: [a], 400, "Pick at least 2 different models to compare."),
        (lambda a, b: [a, a], 400, "Pick at least 2 different models to compare."),
        (lambda a, b: [a, "not-a-uuid"], 400, "One of the models picked is not a valid model id"),
        (lambda a, b: [a, uuid.uuid4()], 404, "1 of the models picked was not found."),
    ],
    ids=["none", "one", "the-same-twice", "bad-id", "unknown"],
)
def test_it_refuses_bad_picks_with_a_message(
    owner_client: Client, pair: tuple[YoloModel, YoloModel], picked: Any, status: int, message: str
) -> None:
    response = owner_client.get(query(*picked(*pair)))
    assert response.status_code == status
    body = response.content.decode()
    assert message in body
    assert 'role="alert"' in body
    assert '<h2 id="metrics">' not in body


def test_it_refuses_more_than_eight_models(owner_client: Client, funded: User) -> None:
    models = [make_run(funded, f"m{i}", [detect_metrics(0.5)]) for i in range(9)]
    response = owner_client.get(query(*models))
    assert response.status_code == 400
    assert "Pick at most 8 models to compare; you picked 9." in response.content.decode()
    assert owner_client.get(query(*models[:8])).status_code == 200


def test_another_users_model_is_refused_like_an_unknown_one(
    owner_client: Client, outsider: User, pair: tuple[YoloModel, YoloModel]
) -> None:
    fund(outsider, 10_000_000)
    theirs = make_run(outsider, "outsiders-secret", [detect_metrics(0.5)])
    response = owner_client.get(query(pair[0], theirs))
    unknown = owner_client.get(query(pair[0], uuid.uuid4()))
    assert response.status_code == unknown.status_code == 404
    body = response.content.decode()
    assert "1 of the models picked was not found." in body
    assert "outsiders-secret" not in body
    assert str(theirs.uid) not in body


def test_an_outsider_cannot_compare_the_owners_models(
    outsider_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    response = outsider_client.get(query(*pair))
    assert response.status_code == 404
    body = response.content.decode()
    assert "2 of the models picked were not found." in body
    assert "small-lr" not in body


def test_it_answers_only_get(owner_client: Client, pair: tuple[YoloModel, YoloModel]) -> None:
    assert owner_client.post(query(*pair)).status_code == 405


def test_signed_out_visitors_are_sent_to_sign_in(client: Client, pair: tuple[YoloModel, YoloModel]) -> None:
    response = client.get(query(*pair))
    assert response.status_code == 302
    assert "login" in response["Location"]


# --- metrics -----------------------------------------------------------------------------------


def test_the_higher_map_and_the_lower_loss_are_marked_best(
    owner_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    response = owner_client.get(query(*pair))
    assert response.status_code == 200
    body = response.content.decode()
    final = body[body.index("<h3>Final epoch</h3>") : body.index("<h3>Best epoch</h3>")]
    # big-lr ends at detect_metrics(0.4), small-lr at detect_metrics(0.6)
    assert cells(row_html(final, "mAP50-95")) == ["0.3000", '<strong>0.4000</strong> <span class="mark">best</span>']
    assert cells(row_html(final, "Box loss (train)")) == [
        "1.6000",
        '<strong>1.4000</strong> <span class="mark">best</span>',
    ]
    assert cells(row_html(final, "Epoch")) == ["2", "3"]
    best = body[body.index("<h3>Best epoch</h3>") :]
    assert cells(row_html(best, "Epoch"))[:2] == ["2", "2"]  # small-lr peaked at epoch 2 of 3
    assert cells(row_html(best, "mAP50")) == ["0.4400", '<strong>0.7400</strong> <span class="mark">best</span>']


def test_the_comparison_marks_best_per_row_and_ties_share_it(funded: User) -> None:
    first = make_run(funded, "first", [{**detect_metrics(0.5), "recall": 0.6}])
    second = make_run(funded, "second", [{**detect_metrics(0.5), "recall": 0.6, "map50": 0.1}])
    third = make_run(funded, "third", [{**detect_metrics(0.5), "recall": 0.4}])
    comparison = compare_models(funded, [str(m.uid) for m in (first, second, third)])
    final = {row.label: row for row in comparison.metrics[0].rows}
    assert [cell.best for cell in final["Recall"].cells] == [True, True, False]
    assert [cell.best for cell in final["mAP50"].cells] == [True, False, True]
    assert [cell.best for cell in final["Precision"].cells] == [False, False, False]  # all equal: nothing to mark
    assert [cell.best for cell in final["Epoch"].cells] == [False, False, False]


def test_the_evaluation_section_compares_evaluated_models(
    owner_client: Client, pair: tuple[YoloModel, YoloModel], funded: User
) -> None:
    worse, better = pair
    evaluate(worse, map50=0.81)
    evaluate(better, map50=0.62)
    pending = make_run(funded, "pending", [detect_metrics(0.1)])
    evaluate(pending, map50=0.99, done=False)  # not finished: not shown
    body = owner_client.get(query(worse, better, pending)).content.decode()
    evaluation = body[body.index("<h3>Evaluation</h3>") : body.index('<h2 id="curves">')]
    assert cells(row_html(evaluation, "mAP50")) == [
        '<strong>0.8100</strong> <span class="mark">best</span>',
        "0.6200",
        "—",
    ]
    assert cells(row_html(evaluation, "Weights of epoch")) == ["2", "3", "—"]


def test_models_of_different_tasks_are_compared_on_what_they_share(owner_client: Client, funded: User) -> None:
    detector = make_run(funded, "detector", [detect_metrics(0.5)])
    segmenter = make_run(
        funded,
        "segmenter",
        [{**detect_metrics(0.7), "mask_map50": 0.5, "mask_map50_95": 0.3, "train_seg_loss": 1.0}],
        task="segment",
        architecture="yolo11n-seg",
    )
    classifier = make_run(
        funded, "classifier", [{"top1": 0.8, "top5": 1.0, "train_loss": 0.5, "val_loss": 0.6}], task="classify"
    )
    body = owner_client.get(query(detector, segmenter)).content.decode()
    assert "These models do different tasks (detection, segmentation)" in body
    final = body[body.index("<h3>Final epoch</h3>") : body.index("<h3>Best epoch</h3>")]
    assert cells(row_html(final, "mAP50-95"))[1].startswith("<strong>0.4500</strong>")
    assert "Mask mAP50" not in final  # the detector has no masks

    body = owner_client.get(query(detector, classifier)).content.decode()
    assert "These models do different tasks (detection, classification)" in body
    assert "These models share no measure to chart." in body


def test_segmenters_compare_their_masks_first(owner_client: Client, funded: User) -> None:
    def masks(precision: float, map50: float) -> dict[str, float]:
        return {
            **detect_metrics(0.5),
            "mask_precision": precision,
            "mask_recall": 0.5,
            "mask_map50": map50,
            "mask_map50_95": map50 / 2,
            "train_seg_loss": 1.0 + map50,
            "val_seg_loss": 1.1,
        }

    one = make_run(funded, "seg-a", [masks(0.8, 0.4)], task="segment", architecture="yolo11n-seg")
    two = make_run(funded, "seg-b", [masks(0.6, 0.6)], task="segment", architecture="yolo11n-seg")
    body = owner_client.get(query(one, two)).content.decode()
    final = body[body.index("<h3>Final epoch</h3>") : body.index("<h3>Best epoch</h3>")]
    labels = [label.strip() for label in re.findall(r'<th scope="row">([^<]+)', final)]
    assert labels[:6] == ["Epoch", "Mask precision", "Mask recall", "Mask mAP50", "Mask mAP50-95", "Precision"]
    assert labels[9:11] == ["Mask loss (train)", "Box loss (train)"]  # the task's own loss first
    assert cells(row_html(final, "Mask precision"))[0].startswith("<strong>0.8000</strong>")
    assert cells(row_html(final, "Mask mAP50"))[1].startswith("<strong>0.6000</strong>")
    assert cells(row_html(final, "Mask loss (train)"))[0].startswith("<strong>1.4000</strong>")
    assert "Mask mAP50 per epoch" in body


def test_classifiers_compare_accuracy(owner_client: Client, funded: User) -> None:
    one = make_run(funded, "cls-a", [{"top1": 0.6, "top5": 0.9, "train_loss": 0.9, "val_loss": 1.0}], task="classify")
    two = make_run(funded, "cls-b", [{"top1": 0.7, "top5": 0.9, "train_loss": 0.8, "val_loss": 1.1}], task="classify")
    for model, top1 in ((one, 0.65), (two, 0.55)):  # a classifier's evaluation has no curves
        ModelEvaluation.objects.create(
            model=model,
            task="classify",
            status=ModelEvaluation.Status.DONE,
            weights_epoch=1,
            metrics={"top1": top1, "top5": 0.9},
            per_class=[{"name": "a", "images": 4, "top1": top1}],
        )
    body = owner_client.get(query(one, two)).content.decode()
    final = body[body.index("<h3>Final epoch</h3>") : body.index("<h3>Best epoch</h3>")]
    assert cells(row_html(final, "Top-1 accuracy"))[1].startswith("<strong>0.7000</strong>")
    evaluation = body[body.index("<h3>Evaluation</h3>") : body.index('<h2 id="curves">')]
    assert cells(row_html(evaluation, "Top-1 accuracy"))[0].startswith("<strong>0.6500</strong>")
    assert "Precision-recall" not in body
    assert cells(row_html(final, "Loss (val)"))[0].startswith("<strong>1.0000</strong>")
    assert "Top-1 accuracy per epoch" in body


# --- curves ------------------------------------------------------------------------------------


def test_every_model_has_its_line_on_each_chart(
    owner_client: Client, pair: tuple[YoloModel, YoloModel], funded: User
) -> None:
    worse, better = pair
    evaluate(worse, map50=0.8, precision_at=0.95)
    evaluate(better, map50=0.6, precision_at=0.7)
    body = owner_client.get(query(worse, better)).content.decode()
    curves = body[body.index('<h2 id="curves">') : body.index('<h2 id="settings">')]
    figures = re.findall(r"<figure class=\"chart\">.*?</figure>", curves, re.S)
    titles = [re.search(r"<figcaption>(.*?)</figcaption>", figure).group(1) for figure in figures]  # type: ignore[union-attr]
    assert titles == ["mAP50 per epoch", "Training box loss per epoch", "Precision-recall (evaluation, all classes)"]
    for figure in figures:
        lines = re.findall(r'<g class="compare-line"><title>(.*?)</title>\s*<polyline[^>]*points="([^"]+)"', figure)
        assert [name for name, _points in lines] == ["big-lr", "small-lr"]
        legend = re.search(r'<ul class="legend">(.*?)</ul>', figure, re.S).group(1)  # type: ignore[union-attr]
        assert "big-lr" in legend
        assert "small-lr" in legend
    epoch_lines = re.findall(r'points="([^"]+)"', figures[0])
    assert [len(points.split()) for points in epoch_lines] == [2, 3]  # one point per epoch
    pr_lines = re.findall(r'points="([^"]+)"', figures[2])
    assert [len(points.split()) for points in pr_lines] == [101, 101]
    assert "stroke-dasharray" in figures[0]  # the second model is told apart without colour too


def test_the_pr_chart_says_which_models_are_not_evaluated(
    owner_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    worse, better = pair
    evaluate(better, map50=0.6)
    body = owner_client.get(query(worse, better)).content.decode()
    assert "Not evaluated, or no curve for its task: big-lr." in body
    without = owner_client.get(query(*pair, order="usual")).content.decode()
    assert without.count('<figure class="chart">') == 3
    ModelEvaluation.objects.all().delete()
    assert owner_client.get(query(*pair)).content.decode().count('<figure class="chart">') == 2


# --- settings and cost -------------------------------------------------------------------------


def test_settings_that_changed_are_flagged_and_listed_first(
    owner_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    body = owner_client.get(query(*pair)).content.decode()
    settings = body[body.index('<h2 id="settings">') : body.index('<h2 id="cost">')]
    assert "4 settings changed between these models" in settings
    labels = re.findall(r'<tr( class="differs")?><th scope="row">([^<]+?) ?<', settings)
    flagged = [label for differs, label in labels if differs]
    assert flagged == ["Dataset", "Epochs completed / target", "imgsz", "lr0"]
    assert [label for _differs, label in labels][: len(flagged)] == flagged
    assert cells(row_html(settings, "lr0")) == ["0.05", "0.01"]
    assert cells(row_html(settings, "batch")) == ["8", "8"]
    assert '<span class="mark">differs</span>' in row_html(settings, "imgsz")

    usual = owner_client.get(query(*pair, order="usual")).content.decode()
    usual_settings = usual[usual.index('<h2 id="settings">') : usual.index('<h2 id="cost">')]
    in_order = [label.strip() for label in re.findall(r'<th scope="row">([^<]+)', usual_settings)]
    assert in_order[:5] == ["Task", "Architecture", "Starting weights", "Dataset", "Epochs completed / target"]
    assert in_order[5:] == ["batch", "imgsz", "lr0"]
    assert "Show differences first" in usual_settings


def test_an_argument_only_one_model_set_shows_as_default(owner_client: Client, funded: User) -> None:
    one = make_run(funded, "plain", [detect_metrics(0.5)])
    two = make_run(funded, "cosine", [detect_metrics(0.5)], train_args={"cos_lr": True})
    body = owner_client.get(query(one, two)).content.decode()
    assert cells(row_html(body, "cos_lr")) == ["default", "true"]


def test_cost_and_training_time_come_from_the_ledger_and_the_epochs(
    owner_client: Client, pair: tuple[YoloModel, YoloModel]
) -> None:
    body = owner_client.get(query(*pair)).content.decode()
    cost = body[body.index('<h2 id="cost">') :]
    # big-lr: 2 epochs of 3 s = US$0.0060; small-lr: 3 epochs of 2 s = US$0.0060 too
    assert cells(row_html(cost, "Charged")) == ["US$0.0060", "US$0.0060"]
    assert cells(row_html(cost, "Training time (billed epochs)")) == ["0:00:06", "0:00:06"]


def test_the_cheaper_model_is_marked(owner_client: Client, funded: User) -> None:
    quick = make_run(funded, "quick", [detect_metrics(0.5)], epoch_ms=1_000)
    slow = make_run(funded, "slow", [detect_metrics(0.5)], epoch_ms=65_000)
    body = owner_client.get(query(quick, slow)).content.decode()
    cost = body[body.index('<h2 id="cost">') :]
    assert cells(row_html(cost, "Charged")) == [
        '<strong>US$0.0010</strong> <span class="mark">best</span>',
        "US$0.0650",
    ]
    assert cells(row_html(cost, "Training time (billed epochs)")) == [
        '<strong>0:00:01</strong> <span class="mark">best</span>',
        "0:01:05",
    ]


def test_a_model_with_no_epochs_yet_is_shown_with_dashes(owner_client: Client, funded: User) -> None:
    trained = make_run(funded, "trained", [detect_metrics(0.5)])
    fresh = make_run(funded, "fresh", [])
    body = owner_client.get(query(trained, fresh)).content.decode()
    final = body[body.index("<h3>Final epoch</h3>") : body.index("<h3>Best epoch</h3>")]
    assert cells(row_html(final, "mAP50")) == ["0.5000", "—"]
    assert cells(row_html(final, "Box loss (val)")) == ["1.6000", "—"]
    assert "No epochs yet: fresh." in body


# --- speed -------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 5])
def test_the_page_makes_the_same_queries_for_any_number_of_models(
    owner_client: Client, funded: User, django_assert_num_queries: DjangoAssertNumQueries, count: int
) -> None:
    models = [make_run(funded, f"model {i}", [detect_metrics(e / 10) for e in range(1, 4 + i)]) for i in range(count)]
    for model in models[::2]:
        evaluate(model, map50=0.5)
    owner_client.get(query(*models))  # the session and user are cached after the first request
    # session, user, the header's balance; models, epochs, evaluations, charges
    with django_assert_num_queries(7):
        response = owner_client.get(query(*models))
    assert response.status_code == 200
    assert response.content.decode().count('<g class="compare-line">') == 2 * count + len(models[::2])


def test_rows_render_their_text_escaped() -> None:
    from training.comparison.tables import Cell, Row

    row = Row("<b>label</b>", (Cell("<script>x</script>", best=True), Cell("a & b")), differs=True)

    html = str(row)

    assert "<script>" not in html
    assert "<b>" not in html
    assert '&lt;script&gt;x&lt;/script&gt;</strong> <span class="mark">best</span>' in html
    assert '<td class="num">a &amp; b</td>' in html
    assert html.startswith('<tr class="differs"><th scope="row">&lt;b&gt;label&lt;/b&gt; <span class="mark">differs')
