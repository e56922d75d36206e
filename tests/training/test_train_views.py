"""The Train tab, step 3, Stop and the live panel, through the real views."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from hubsite.models import User
from tests.factories import cpu_instance, fund, make_model, make_ready_dataset
from training.models import EpochRecord, TrainingSession, YoloModel

Status = TrainingSession.Status


def url(name: str, model: YoloModel, **kwargs: Any) -> str:
    return reverse(f"training:{name}", kwargs={"uid": model.uid, **kwargs})


def start_data(**overrides: Any) -> dict[str, Any]:
    return {"mode": "epochs", "epochs": 3, "instance_type": cpu_instance().pk, "payment": "balance", **overrides}


def with_epochs(model: YoloModel, count: int, status: str = Status.TRAINING, target: int = 0) -> TrainingSession:
    session = TrainingSession.objects.create(
        model=model, owner=model.owner, instance_type=cpu_instance(), target_epochs=target or count + 10, status=status,
        training_started_at=timezone.now() - timedelta(minutes=5), heartbeat_at=timezone.now(),
    )  # fmt: skip
    now = timezone.now()
    EpochRecord.objects.bulk_create(
        EpochRecord(
            session=session, model=model, epoch=epoch, started_at=now, finished_at=now, duration_ms=1500,
            metrics={"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.2, "train_box_loss": 1.2},
        )
        for epoch in range(1, count + 1)
    )  # fmt: skip
    YoloModel.objects.filter(pk=model.pk).update(epochs_completed=count)
    model.refresh_from_db()
    return session


def test_the_train_tab_offers_step_3_with_prices_and_availability(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    page = owner_client.get(reverse("training:model_detail", args=[model.uid]) + "?tab=train").content.decode()
    assert "Start Training" in page
    for text in ("CPU (demo)", "US$0.20/h", "worker available", "no worker online"):
        assert text in page
    assert "Estimated cost" in page
    assert "disabled" not in page.split("Start Training</button>")[0].rsplit("<button", 1)[1]


def test_start_is_disabled_with_the_reason_under_the_minimum_balance(
    owner_client: Client, model: YoloModel, cpu_online: None
) -> None:
    page = owner_client.get(url("train_page", model)).content.decode()
    assert "Epochs mode needs at least US$5.00 available; top up US$5.00 or more." in page
    assert 'class="primary start-button" disabled>' in page


def test_start_queues_a_session_and_shows_it_live(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    response = owner_client.post(url("train_start", model), start_data(), headers={"HX-Request": "true"})
    assert response.status_code == 200
    session = TrainingSession.objects.get()
    assert (session.status, session.target_epochs) == (Status.QUEUED, 3)
    body = response.content.decode()
    assert "Queued for CPU (demo): position 1" in body
    assert 'hx-trigger="every 2s"' in body


def test_a_refused_start_shows_why_and_creates_nothing(owner_client: Client, model: YoloModel) -> None:
    response = owner_client.post(url("train_start", model), start_data())  # no worker online, no balance
    assert response.status_code == 400
    assert "No CPU (demo) worker is online" in response.content.decode()
    assert not TrainingSession.objects.exists()


def test_a_target_below_the_completed_epochs_is_rejected(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    with_epochs(model, 5, status=Status.STOPPED)
    response = owner_client.post(url("train_start", model), start_data(epochs=4))
    assert response.status_code == 400
    assert "the target must be at least 6" in response.content.decode()


def test_stop_asks_a_running_session_to_stop(owner_client: Client, model: YoloModel) -> None:
    session = with_epochs(model, 2)
    TrainingSession.objects.filter(pk=session.pk).update(worker_id="w", claimed_at=timezone.now())
    response = owner_client.post(url("train_stop", model), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert TrainingSession.objects.get().status == Status.STOPPING
    assert "Stopping after the current batch" in response.content.decode()


def test_stop_with_nothing_training_says_so_in_the_panel(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 3, status=Status.COMPLETED)  # it finished while the page still offered Stop
    response = owner_client.post(url("train_stop", model), headers={"HX-Request": "true"})
    body = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert "Nothing is training: there is nothing to stop." in body
    assert "Completed: 3 epochs." in body
    assert TrainingSession.objects.get().status == Status.COMPLETED


def test_the_estimate_answers_only_the_estimate_and_what_blocks_start(
    owner_client: Client, model: YoloModel, cpu_online: None
) -> None:
    query: dict[str, str | int] = {
        "mode": "timed",
        "days": 0,
        "hours": 2,
        "minutes": 30,
        "instance_type": cpu_instance().pk,
    }
    body = owner_client.get(url("train_estimate", model), query, headers={"HX-Request": "true"}).content.decode()
    assert body.lstrip().startswith('<div id="start-estimate"')
    assert "Price: <strong>US$0.50</strong>" in body  # 2.5 h at US$0.20/h
    assert "<input" not in body  # the inputs being typed in are never sent back
    assert "blockers" not in body
    epochs = owner_client.get(url("train_estimate", model), {**query, "mode": "epochs", "epochs": 5}).content.decode()
    assert "Epochs mode needs at least US$5.00 available" in epochs
    assert owner_client.post(url("train_estimate", model), query).status_code == 405


def test_mutations_reject_get(owner_client: Client, model: YoloModel) -> None:
    assert owner_client.get(url("train_start", model)).status_code == 405
    assert owner_client.get(url("train_stop", model)).status_code == 405
    assert owner_client.get(url("export", model, export_format="onnx")).status_code == 405


def test_every_training_url_is_404_for_another_user(outsider_client: Client, model: YoloModel) -> None:
    with_epochs(model, 1)
    for name in ("train_page", "train_panel", "train_estimate", "train_charts"):
        assert outsider_client.get(url(name, model)).status_code == 404, name
    assert outsider_client.post(url("train_start", model), start_data()).status_code == 404
    assert outsider_client.post(url("train_stop", model)).status_code == 404
    assert outsider_client.post(url("export", model, export_format="onnx")).status_code == 404
    assert outsider_client.get(url("export_download", model, export_format="onnx")).status_code == 404
    assert TrainingSession.objects.get().status == Status.TRAINING


def test_the_poll_stops_when_the_session_is_final(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 3, status=Status.COMPLETED)
    response = owner_client.get(url("train_panel", model) + "?seen=3", headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert "Completed: 3 epochs" in response.content.decode()


def test_the_poll_announces_a_new_epoch_so_charts_refresh_only_then(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 4, target=10)
    fresh = owner_client.get(url("train_panel", model) + "?seen=3", headers={"HX-Request": "true"})
    same = owner_client.get(url("train_panel", model) + "?seen=4", headers={"HX-Request": "true"})
    assert json.loads(fresh["HX-Trigger"]) == {"epoch-landed": {}}
    assert "HX-Trigger" not in same
    assert "40% Training in progress. Checkpoint saved for epoch 4." in same.content.decode()


def test_the_poll_costs_the_same_queries_for_3_or_300_epochs(owner_client: Client, user: User, tmp_path: Path) -> None:
    small = make_model(user, make_ready_dataset(user, tmp_path / "s"), epochs=3)
    large = make_model(user, make_ready_dataset(user, tmp_path / "l"), epochs=300)
    with_epochs(small, 3)
    TrainingSession.objects.update(status=Status.COMPLETED)
    with_epochs(large, 300)
    counts = []
    for shown in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert owner_client.get(url("train_panel", shown), headers={"HX-Request": "true"}).status_code in (200, 286)
        counts.append(len(queries))
    assert counts[1] <= 12
    assert counts[1] <= counts[0] + 1  # the active one adds its progress, never per-epoch work


def test_charts_draw_every_epoch_as_svg_with_hover_titles(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 5)
    body = owner_client.get(url("train_charts", model)).content.decode()
    assert body.count("<svg") == 2
    assert "<title>mAP50, epoch 5: 0.3000</title>" in body
    assert "Precision" in body
    assert "Box loss (train)" in body


def test_pay_now_sends_the_browser_to_stripe_checkout(owner_client: Client, model: YoloModel, cpu_online: None) -> None:
    data = start_data(mode="timed", hours=3, minutes=0, days=0, payment="pay_now")  # US$0.60: above Stripe minimum
    response = owner_client.post(url("train_start", model), data, headers={"HX-Request": "true"})
    assert response.status_code == 200, response.content.decode()
    assert "/_config/checkout/pay/" in response["HX-Redirect"]
    assert not TrainingSession.objects.exists()  # no session until Stripe confirms the payment


def test_pay_now_is_refused_in_epochs_mode(
    owner_client: Client, user: User, model: YoloModel, cpu_online: None
) -> None:
    fund(user, as_adjustment=True)
    response = owner_client.post(url("train_start", model), start_data(payment="pay_now"))
    assert response.status_code == 400
    assert "Pay now is for Timed training" in response.content.decode()


def test_home_lists_recent_models_with_their_latest_status(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 2, status=Status.PAUSED)
    page = owner_client.get(reverse("training:home")).content.decode()
    assert "shapes-detector" in page
    assert "Paused" in page
    assert reverse("training:train_wizard") in page


def test_the_wizard_lists_ready_datasets_and_step_2_leads_to_step_3(
    owner_client: Client, user: User, model: YoloModel
) -> None:
    page = owner_client.get(reverse("training:train_wizard")).content.decode()
    assert f"?dataset={model.dataset.uid}" in page
    response = owner_client.post(
        reverse("training:model_create"),
        {"name": "second", "dataset": model.dataset.pk, "architecture": "yolo11n", "epochs": 5, "imgsz": 64,
         "batch": 8, "patience": 100, "cache": "none", "custom_args": ""},
    )  # fmt: skip
    created = YoloModel.objects.get(name="second")
    assert response.status_code == 302
    assert response["Location"] == url("train_page", created)
    step_3 = owner_client.get(response["Location"]).content.decode()
    assert 'aria-current="step">3. Train' in step_3


def test_exports_are_queued_from_the_artifacts_tab(
    owner_client: Client, model: YoloModel, redis_client: redis.Redis
) -> None:
    with_epochs(model, 1, status=Status.STOPPED)
    model.best_weights.name = f"{model.storage_prefix}/checkpoints/epoch-0001.pt"
    model.save()
    response = owner_client.post(url("export", model, export_format="onnx"))
    assert response.status_code == 302
    export = model.exports.get()
    assert (export.format, export.status, export.weights_epoch) == ("onnx", "pending", 1)
    page = owner_client.get(reverse("training:model_detail", args=[model.uid]) + "?tab=artifacts").content.decode()
    assert "ONNX of epoch 1: pending" in " ".join(page.split())
    assert owner_client.post(url("export", model, export_format="tflite")).status_code == 302
    assert model.exports.count() == 1


def test_a_paused_session_says_what_the_balance_lacks_and_offers_a_top_up(
    owner_client: Client, model: YoloModel
) -> None:
    with_epochs(model, 2, status=Status.PAUSED)  # the account holds US$0.00
    YoloModel.objects.filter(pk=model.pk).update(last_checkpoint=f"{model.storage_prefix}/checkpoints/epoch-0002.pt")
    body = " ".join(owner_client.get(url("train_panel", model)).content.decode().split())
    assert "Paused after epoch 2: your balance does not cover the next epoch." in body
    assert "Resume needs at least US$5.00 available; you have US$0.00." in body
    assert reverse("stripe:top_up") in body
    assert "Resume Training from epoch 3" in body


def test_a_queued_session_says_why_it_waits(owner_client: Client, user: User, model: YoloModel, tmp_path: Path) -> None:
    other = make_model(user, make_ready_dataset(user, tmp_path / "o"), epochs=3)
    with_epochs(other, 1)  # training on the only CPU worker
    TrainingSession.objects.create(model=model, owner=user, instance_type=cpu_instance(), target_epochs=3)
    body = " ".join(owner_client.get(url("train_panel", model)).content.decode().split())
    assert "Queued for CPU (demo): position 1 in its queue." in body
    assert "Its workers are busy with 1 other session; it starts when one is free." in body


def test_the_wizard_train_page_draws_the_charts_of_recorded_epochs(owner_client: Client, model: YoloModel) -> None:
    with_epochs(model, 12, status=Status.STOPPED)
    body = owner_client.get(url("train_page", model)).content.decode()
    assert body.count("<svg") == 2
    assert "<title>mAP50, epoch 12: 0.3000</title>" in body
    assert "appear here after the first epoch" not in body
