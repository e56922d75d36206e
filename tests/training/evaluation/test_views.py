"""The Evaluation tab, "Evaluate now", the validation pictures and the summaries: each
state of the tab, a constant number of queries whatever the number of classes, CSRF
and the rate limit on the POST, and a 404 for another user on every URL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from hubsite.models import User
from tests.factories import make_model, make_session
from tests.training.evaluation.helpers import JPEG, class_name, done_evaluation
from training.models import ModelEvaluation, YoloModel

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
Status = ModelEvaluation.Status


@pytest.fixture
def trained(user: User) -> YoloModel:
    """A model with best weights (two epochs), not evaluated yet."""
    model = make_model(user)
    model.best_weights.name = default_storage.save(f"{model.storage_prefix}/best.pt", ContentFile(b"weights"))
    model.epochs_completed = 2
    model.save()
    return model


def tab(client: Client, model: YoloModel, **headers: str) -> str:
    response = client.get(f"/models/{model.uid}/?tab=evaluation", headers=headers)
    assert response.status_code == 200
    return response.content.decode()


def test_a_model_without_weights_has_nothing_to_evaluate_and_no_button(owner_client: Client, user: User) -> None:
    body = tab(owner_client, make_model(user))
    assert "nothing to evaluate yet" in body
    assert "Evaluate now" not in body


def test_a_model_not_evaluated_yet_offers_evaluate_now(owner_client: Client, trained: YoloModel) -> None:
    body = tab(owner_client, trained)
    assert "has not been evaluated yet" in body
    assert f'action="/models/{trained.uid}/evaluation/"' in body
    assert "Evaluate now" in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_a_waiting_evaluation_polls_the_tab_until_it_is_done(owner_client: Client, trained: YoloModel) -> None:
    ModelEvaluation.objects.create(model=trained, task="detect", status=Status.RUNNING, weights_epoch=2)

    fragment = tab(owner_client, trained, **HTMX)

    assert fragment.lstrip().startswith('<div id="model-tab" class="tab-panel" data-tab="evaluation">')
    assert f'hx-get="/models/{trained.uid}/?tab=evaluation" hx-trigger="every 3s"' in fragment
    assert "Evaluating: the best weights of epoch 2" in fragment
    assert "Evaluate again" not in fragment

    ModelEvaluation.objects.filter(model=trained).update(status=Status.DONE)
    assert "every 3s" not in tab(owner_client, trained, **HTMX)


def test_a_failed_evaluation_shows_why_and_offers_another(owner_client: Client, trained: YoloModel) -> None:
    ModelEvaluation.objects.create(
        model=trained, task="detect", status=Status.FAILED, error="The evaluation failed: the dataset is gone"
    )
    body = tab(owner_client, trained)
    assert "The evaluation failed: the dataset is gone" in body
    assert "Evaluate again" in body
    assert "every 3s" not in body


def test_a_done_evaluation_shows_figures_worst_classes_first_confusion_curves_and_pictures(
    owner_client: Client, trained: YoloModel
) -> None:
    done_evaluation(trained, classes=4)

    body = tab(owner_client, trained)

    assert "Best weights of epoch 2" in body
    assert '<th class="num">mAP50-95</th>' in body
    assert "0.500" in body  # the overall mAP50-95
    rows = [body.index(f'<th scope="row">{class_name(index)}</th>') for index in range(4)]
    assert rows == sorted(rows)  # class 0 scores lowest: listed first
    assert body.count('<tr class="weak">') == 2  # 0.2 and 0.4 are below the overall 0.5
    assert body.count('class="num diagonal"') == 4  # the right answers; background has none
    assert "--share: 0.556" in body  # 5 of the 9 in each column
    assert body.count('<figure class="chart">') == 4
    assert "<title>All classes</title>" in body
    assert "Precision-recall (precision against recall)" in body
    for index in range(6):
        assert f"/models/{trained.uid}/evaluation/pictures/{index}.jpg" in body
    assert f"/models/{trained.uid}/evaluation/summary.json" in body
    assert f"/models/{trained.uid}/evaluation/summary.csv" in body
    assert "Evaluate again" in body
    assert "has trained since" not in body


def test_an_evaluation_of_older_weights_says_the_model_has_trained_since(
    owner_client: Client, trained: YoloModel
) -> None:
    done_evaluation(trained)
    YoloModel.objects.filter(pk=trained.pk).update(epochs_completed=5)
    assert "The model has trained since (epoch 5)" in tab(owner_client, trained)


def test_a_model_in_training_is_evaluated_when_its_session_ends(
    owner_client: Client, user: User, trained: YoloModel
) -> None:
    make_session(user, model=trained)

    body = tab(owner_client, trained)
    assert "it is evaluated when the session ends" in body
    assert "Evaluate now" not in body

    response = owner_client.post(f"/models/{trained.uid}/evaluation/", follow=True)
    assert "The model is training: it is evaluated when the session ends." in response.content.decode()
    assert not ModelEvaluation.objects.exists()


def queries_to_render(client: Client, model: YoloModel) -> int:
    with CaptureQueriesContext(connection) as captured:
        tab(client, model, **HTMX)
    return len(captured)


def test_the_tab_renders_in_a_constant_number_of_queries(
    owner_client: Client, user: User, django_assert_num_queries: Any
) -> None:
    small = make_model(user)
    done_evaluation(small, classes=3, pictures=1)
    expected = queries_to_render(owner_client, small)

    for classes in (20, 80):
        large = make_model(user)
        done_evaluation(large, classes=classes)
        with django_assert_num_queries(expected):
            tab(owner_client, large, **HTMX)
        # The rendered results are cached per evaluation: the bulk of it is not read again.
        with django_assert_num_queries(expected - 1):
            assert class_name(classes - 1) in tab(owner_client, large, **HTMX)


def test_evaluate_now_queues_an_evaluation_and_comes_back_to_the_tab(
    owner_client: Client, trained: YoloModel, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as sent:
        response = owner_client.post(f"/models/{trained.uid}/evaluation/")

    assert response.status_code == 302
    assert response["Location"] == f"/models/{trained.uid}/?tab=evaluation"
    evaluation = ModelEvaluation.objects.get(model=trained)
    assert (evaluation.status, evaluation.weights_epoch) == (Status.PENDING, 2)
    assert len(sent) == 1  # the message, sent once the request's transaction commits
    assert "Evaluation queued" in tab(owner_client, trained)


def test_evaluate_now_refuses_a_model_without_weights(owner_client: Client, user: User) -> None:
    model = make_model(user)
    response = owner_client.post(f"/models/{model.uid}/evaluation/", follow=True)
    assert "There are no weights to evaluate yet" in response.content.decode()
    assert not ModelEvaluation.objects.exists()


def test_evaluate_now_takes_only_a_post_with_its_csrf_token(user: User, trained: YoloModel) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/models/{trained.uid}/evaluation/").status_code == 403
    assert client.get(f"/models/{trained.uid}/evaluation/").status_code == 405
    assert not ModelEvaluation.objects.exists()


def test_evaluate_now_is_rate_limited_per_user(owner_client: Client, trained: YoloModel, settings: Any) -> None:
    settings.RATE_LIMIT_EVALUATIONS_PER_USER = 2
    url = f"/models/{trained.uid}/evaluation/"
    assert [owner_client.post(url).status_code for _ in range(2)] == [302, 302]
    assert owner_client.post(url).status_code == 429


def test_the_pictures_stream_from_storage_to_their_owner(owner_client: Client, trained: YoloModel) -> None:
    done_evaluation(trained, pictures=1, store=True)

    response = owner_client.get(f"/models/{trained.uid}/evaluation/pictures/1.jpg")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content) == JPEG  # type: ignore[attr-defined]
    assert owner_client.get(f"/models/{trained.uid}/evaluation/pictures/2.jpg").status_code == 404
    assert owner_client.post(f"/models/{trained.uid}/evaluation/pictures/1.jpg").status_code == 405


def test_pictures_and_summaries_wait_for_a_done_evaluation(owner_client: Client, trained: YoloModel) -> None:
    ModelEvaluation.objects.create(model=trained, task="detect", status=Status.RUNNING, pictures=["x"])
    assert owner_client.get(f"/models/{trained.uid}/evaluation/pictures/0.jpg").status_code == 404
    assert owner_client.get(f"/models/{trained.uid}/evaluation/summary.json").status_code == 404


def test_the_json_summary_holds_the_whole_evaluation(owner_client: Client, trained: YoloModel) -> None:
    evaluation = done_evaluation(trained, classes=3)

    response = owner_client.get(f"/models/{trained.uid}/evaluation/summary.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="detector-evaluation.json"'
    summary = json.loads(response.content)
    assert summary["model"] == {"uid": str(trained.uid), "name": "detector", "architecture": "yolo11n"}
    assert (summary["task"], summary["weights_epoch"]) == ("detect", 2)
    for field in ("metrics", "per_class", "confusion", "curves"):
        assert summary[field] == getattr(evaluation, field)


def test_the_csv_summary_has_the_overall_row_then_one_per_class(owner_client: Client, trained: YoloModel) -> None:
    evaluation = done_evaluation(trained, classes=2)
    evaluation.per_class[1]["name"] = "=HYPERLINK(1)"  # a class name a spreadsheet would run
    evaluation.save()

    response = owner_client.get(f"/models/{trained.uid}/evaluation/summary.csv")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="detector-evaluation.csv"'
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows == [
        ["class", "images", "instances", "precision", "recall", "map50", "map50_95"],
        ["all", "", "", "0.60000", "0.55000", "0.62000", "0.50000"],
        ["class-00", "4", "6", "0.33333", "0.33333", "0.43333", "0.33333"],
        ["'=HYPERLINK(1)", "5", "7", "0.66667", "0.66667", "0.76667", "0.66667"],
    ]
    assert owner_client.get(f"/models/{trained.uid}/evaluation/summary.xml").status_code == 404


def test_another_user_gets_404_on_every_evaluation_url(outsider_client: Client, trained: YoloModel) -> None:
    done_evaluation(trained, pictures=1, store=True)
    base = f"/models/{trained.uid}"
    assert outsider_client.get(f"{base}/?tab=evaluation", headers=HTMX).status_code == 404
    assert outsider_client.post(f"{base}/evaluation/").status_code == 404
    assert outsider_client.get(f"{base}/evaluation/pictures/0.jpg").status_code == 404
    assert outsider_client.get(f"{base}/evaluation/summary.json").status_code == 404
    assert outsider_client.get(f"{base}/evaluation/summary.csv").status_code == 404
    assert ModelEvaluation.objects.get(model=trained).status == Status.DONE  # not reset by the outsider
