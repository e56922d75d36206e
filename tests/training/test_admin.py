"""The training admin: staff may rename datasets and models and look at everything
else, but never change what the site's own checks guard (owner, dataset, architecture,
training arguments, statuses) nor rewrite a session or its epochs."""

from __future__ import annotations

from typing import Any

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from hubsite.models import User
from tests.factories import make_model, make_session, record_epoch
from training.models import Dataset, TrainingSession, YoloModel


def guarded(obj: Any, *names: str) -> dict[str, Any]:
    obj.refresh_from_db()
    return {name: getattr(obj, name) for name in names}


def test_staff_rename_a_model_but_cannot_change_what_the_checks_guard(
    staff_client: Client, user: User, outsider: User
) -> None:
    model = make_model(user)
    model.train_args = {"epochs": 10, "imgsz": 64}
    model.save()
    other_dataset = Dataset.objects.create(owner=outsider, name="theirs", status=Dataset.Status.READY)
    before = guarded(model, "owner_id", "dataset_id", "architecture", "train_args", "pretrained")

    response = staff_client.post(
        reverse("admin:training_yolomodel_change", args=[model.pk]),
        {
            "name": "renamed by staff",
            "owner": outsider.pk,
            "dataset": other_dataset.pk,
            "architecture": "../../etc/passwd",
            "pretrained": "on",
            "train_args": '{"epochs": 100000, "project": "/tmp", "device": "cuda:7"}',
            "epochs_completed": "99",
        },
    )

    assert response.status_code == 302  # saved: the rename went through
    assert guarded(model, "name")["name"] == "renamed by staff"
    assert guarded(model, "owner_id", "dataset_id", "architecture", "train_args", "pretrained") == before
    assert model.epochs_completed == 0


def test_staff_cannot_change_a_datasets_owner_status_or_results(
    staff_client: Client, user: User, outsider: User
) -> None:
    dataset = Dataset.objects.create(
        owner=user, name="shapes", status=Dataset.Status.INVALID, errors=["data.yaml is missing"]
    )
    before = guarded(dataset, "owner_id", "task", "status", "errors", "stats", "class_names")

    response = staff_client.post(
        reverse("admin:training_dataset_change", args=[dataset.pk]),
        {
            "name": "renamed",
            "owner": outsider.pk,
            "task": Dataset.Task.SEGMENT,
            "status": Dataset.Status.READY,
            "errors": "[]",
            "stats": '{"train": 1}',
            "class_names": '["x"]',
        },
    )

    assert response.status_code == 302
    assert guarded(dataset, "name")["name"] == "renamed"
    assert guarded(dataset, "owner_id", "task", "status", "errors", "stats", "class_names") == before


def test_a_session_and_its_epochs_are_view_only(staff_client: Client, user: User, outsider: User) -> None:
    session = make_session(user, status=TrainingSession.Status.TRAINING)
    epoch = record_epoch(session, 1, 10_000)
    url = reverse("admin:training_trainingsession_change", args=[session.pk])
    before = model_to_dict(session)

    page = staff_client.get(url)
    assert page.status_code == 200  # staff can still look
    assert 'name="status"' not in page.content.decode()

    tampered = {
        **{k: "" if v is None else v for k, v in before.items()},
        "owner": outsider.pk,
        "status": TrainingSession.Status.COMPLETED,
        "mode": TrainingSession.Mode.TIMED,
        "resume_after_top_up": "on",
        "epochs-TOTAL_FORMS": "1",
        "epochs-INITIAL_FORMS": "1",
        "epochs-0-id": epoch.pk,
        "epochs-0-session": session.pk,
        "epochs-0-duration_ms": "1",
        "epochs-0-DELETE": "on",
    }
    assert staff_client.post(url, tampered).status_code == 403
    session.refresh_from_db()
    assert model_to_dict(session) == before
    epoch.refresh_from_db()
    assert epoch.duration_ms == 10_000

    assert staff_client.get(reverse("admin:training_trainingsession_add")).status_code == 403
    assert staff_client.get(reverse("admin:training_trainingsession_delete", args=[session.pk])).status_code == 403


@pytest.mark.parametrize("name", ["dataset", "yolomodel", "trainingsession", "export"])
def test_staff_cannot_add_training_objects_past_the_site_s_forms(staff_client: Client, name: str) -> None:
    assert staff_client.get(reverse(f"admin:training_{name}_add")).status_code == 403


def test_deleting_a_model_from_the_admin_is_refused(staff_client: Client, user: User) -> None:
    model = make_model(user)
    make_session(user, model=model, status=TrainingSession.Status.COMPLETED)
    url = reverse("admin:training_yolomodel_delete", args=[model.pk])
    assert staff_client.post(url, {"post": "yes"}).status_code == 403
    assert YoloModel.objects.filter(pk=model.pk).exists()
    assert TrainingSession.objects.filter(model=model).exists()


def test_instance_types_stay_editable(staff_client: Client) -> None:
    assert staff_client.get(reverse("admin:training_instancetype_add")).status_code == 200


def test_only_staff_reach_the_training_admin(owner_client: Client, user: User) -> None:
    model = make_model(user)
    for url in [
        reverse("admin:training_yolomodel_changelist"),
        reverse("admin:training_yolomodel_change", args=[model.pk]),
    ]:
        response = owner_client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))
    response = owner_client.post(reverse("admin:training_yolomodel_change", args=[model.pk]), {"name": "mine now"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    model.refresh_from_db()
    assert model.name == "detector"
