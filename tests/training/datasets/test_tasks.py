"""Datasets of every task through the real upload view and the validation actor's
function: the task read from the files or chosen at upload, each task's checks, stats
and samples."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from tests.training.datasets.helpers import (
    Files,
    all_storage_keys,
    good_files,
    keys_outside,
    problem_text,
    storage_has,
    zip_bytes,
)
from tests.training.datasets.task_zips import (
    CLASSES,
    NAMES_YAML,
    POSE_LINE,
    POSE_YAML,
    classify_files,
    jpeg,
    obb_files,
    pose_files,
    segment_files,
    yaml_task_files,
)
from training.datasets import LabelRow, extract_archive, render_sample, run_validation, storage_keys
from training.models import Dataset

pytestmark = pytest.mark.django_db

Task = Dataset.Task


def upload_as(client: Client, files: Files, task: str = "", *, name: str = "set") -> Dataset:
    """Upload through the view choosing ``task``, then validate in this process."""
    before = all_storage_keys()
    response = client.post(
        reverse("training:dataset_upload"),
        {"name": name, "task": task, "file": SimpleUploadedFile("set.zip", zip_bytes(files))},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    dataset = Dataset.objects.get(name=name)
    assert dataset.declared_task == task
    run_validation(dataset.pk)
    dataset.refresh_from_db()
    assert keys_outside(dataset.storage_prefix, before) == set()
    return dataset


def assert_ready(dataset: Dataset, task: str) -> None:
    assert dataset.status == Dataset.Status.READY, problem_text(dataset)
    assert dataset.task == task
    assert dataset.stats["task"] == task
    samples = dataset.stats["samples"]
    assert samples
    for sample in samples:
        assert storage_has(sample["key"])


def assert_refused(dataset: Dataset, fragment: str, *, file: str | None = None, line: int | None = None) -> None:
    assert dataset.status == Dataset.Status.INVALID, dataset.stats
    text = problem_text(dataset)
    matching = [p for p in dataset.errors if fragment in p["message"]]
    assert matching, text
    if file is not None:
        assert (matching[0]["file"], matching[0]["line"]) == (file, line), text
    assert dataset.stats.get("samples") is None
    assert storage_keys(dataset.storage_prefix) == [dataset.archive.name]


def sample_picture(dataset: Dataset, client: Client, index: int = 0) -> Image.Image:
    response = client.get(reverse("training:dataset_sample", args=[dataset.uid, index]))
    assert response.status_code == 200
    return Image.open(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[attr-defined]


# --- each task, good -----------------------------------------------------------------------------


def test_polygon_labels_make_a_segmentation_dataset(owner_client: Client) -> None:
    dataset = upload_as(owner_client, segment_files())

    assert_ready(dataset, Task.SEGMENT)
    assert dataset.class_names == ["circle", "square"]
    assert dataset.stats["splits"]["train"] == {"images": 4, "background": 0, "instances": 8}
    assert dataset.stats["splits"]["val"] == {"images": 2, "background": 0, "instances": 4}
    assert dataset.stats["instances"] == {"circle": 6, "square": 6}
    assert dataset.stats["points_per_polygon"] == 3.5
    page = owner_client.get(reverse("training:dataset_detail", args=[dataset.uid])).content.decode()
    assert "Segmentation" in page
    assert "8 polygons" in page


def test_segmentation_samples_show_translucent_masks(owner_client: Client) -> None:
    dataset = upload_as(owner_client, segment_files())
    picture = sample_picture(dataset, owner_client).convert("RGB")
    # Inside the first polygon (class colour blended over the flat image), and outside it.
    inside = picture.getpixel((int(0.4 * picture.width), int(0.4 * picture.height)))
    outside = picture.getpixel((int(0.1 * picture.width), int(0.9 * picture.height)))
    assert isinstance(inside, tuple)
    assert isinstance(outside, tuple)
    assert sum(abs(a - b) for a, b in zip(inside, outside, strict=True)) > 40


def test_kpt_shape_makes_a_pose_dataset_with_keypoint_statistics(owner_client: Client) -> None:
    dataset = upload_as(owner_client, pose_files())

    assert_ready(dataset, Task.POSE)
    assert dataset.stats["instances"] == {"circle": 3, "square": 3}
    # Two of each instance's three keypoints are labelled (visibility 2), one is not (0).
    assert dataset.stats["keypoints"] == {"per_instance": 3, "values": 3, "flip_idx": True, "visible_share": 0.667}
    page = owner_client.get(reverse("training:dataset_detail", args=[dataset.uid])).content.decode()
    assert "Pose" in page
    assert "67% labelled" in page


def test_pose_without_visibility_values_is_ready(owner_client: Client) -> None:
    files = pose_files(yaml_text=NAMES_YAML + "kpt_shape: [2, 2]\n", line="0.5 0.5 0.4 0.6 0.4 0.3 0.6 0.3")
    dataset = upload_as(owner_client, files)
    assert_ready(dataset, Task.POSE)
    assert dataset.stats["keypoints"] == {"per_instance": 2, "values": 2, "flip_idx": False, "visible_share": 1.0}


def test_nine_value_labels_chosen_as_oriented_boxes_make_an_obb_dataset(owner_client: Client) -> None:
    dataset = upload_as(owner_client, obb_files(), Task.OBB)
    assert_ready(dataset, Task.OBB)
    assert dataset.stats["splits"]["train"]["instances"] == 4
    assert dataset.get_task_display() in owner_client.get(f"/datasets/{dataset.uid}/").content.decode()


def test_nine_value_labels_chosen_as_segmentation_are_four_point_polygons(owner_client: Client) -> None:
    dataset = upload_as(owner_client, obb_files(), Task.SEGMENT)
    assert_ready(dataset, Task.SEGMENT)
    assert dataset.stats["points_per_polygon"] == 4.0


def test_class_folders_make_a_classification_dataset(owner_client: Client) -> None:
    dataset = upload_as(owner_client, classify_files())

    assert_ready(dataset, Task.CLASSIFY)
    assert dataset.class_names == list(CLASSES)
    assert dataset.stats["splits"] == {
        "train": {"images": 9, "classes": {"cat": 3, "dog": 3, "fox": 3}},
        "val": {"images": 3, "classes": {"cat": 1, "dog": 1, "fox": 1}},
    }
    assert dataset.stats["instances"] == {"cat": 4, "dog": 4, "fox": 4}
    assert {sample["class"] for sample in dataset.stats["samples"]} == set(CLASSES)
    page = owner_client.get(reverse("training:dataset_detail", args=[dataset.uid])).content.decode()
    assert "Images per class" in page
    assert "in 3 classes" in page


def test_classification_in_a_top_folder_with_a_validation_folder_is_ready(owner_client: Client) -> None:
    dataset = upload_as(owner_client, classify_files(top="animals/", val="validation"), Task.CLASSIFY)
    assert_ready(dataset, Task.CLASSIFY)
    assert dataset.stats["layout"]["splits"] == {"train": ["animals/train"], "val": ["animals/validation"]}


def test_a_detection_dataset_chosen_as_detection_stays_detection(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_as(owner_client, good_files(tmp_path), Task.DETECT)
    assert_ready(dataset, Task.DETECT)


# --- each task, bad ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("0.1 0.1 0.5 0.2 1.5 0.6", "point 3 is 1.5 0.6"),
        ("0.1 0.1 0.5 0.2 0.5 0.6 0.3", "its points are not whole x y pairs"),
        ("0.1 0.1 0.2 0.2 0.3 0.3", "enclose no area"),
        ("0.1 0.1 0.5 0.2", "a segmentation label is the class and at least 3 points"),
    ],
    ids=["point-outside-the-image", "odd-coordinate-count", "no-area", "two-points"],
)
def test_a_bad_polygon_is_refused_with_its_file_and_line(owner_client: Client, line: str, message: str) -> None:
    files = segment_files()
    files["labels/val/img_1.txt"] += f"1 {line}\n".encode()
    dataset = upload_as(owner_client, files)
    assert_refused(dataset, message, file="labels/val/img_1.txt", line=3)
    assert dataset.task == Task.SEGMENT


def test_a_pose_line_with_the_wrong_keypoint_count_is_refused(owner_client: Client) -> None:
    files = pose_files()
    files["labels/train/img_2.txt"] = b"0 0.5 0.5 0.4 0.6 0.4 0.3 2 0.6 0.3 2\n"
    dataset = upload_as(owner_client, files)
    assert_refused(
        dataset,
        "This line has 11 values (a box and 2 keypoint(s)); with kpt_shape [3, 3] a pose label needs 14",
        file="labels/train/img_2.txt",
        line=1,
    )


def test_a_keypoint_visibility_other_than_0_1_or_2_is_refused(owner_client: Client) -> None:
    dataset = upload_as(owner_client, pose_files(line=POSE_LINE[:-1] + "3"))
    assert_refused(dataset, "Keypoint 2 has visibility 3; it must be 0", file="labels/train/img_0.txt", line=1)


def test_a_keypoint_outside_the_image_is_refused(owner_client: Client) -> None:
    dataset = upload_as(owner_client, pose_files(line=POSE_LINE.replace("0.6 0.3 2", "1.6 0.3 2")))
    assert_refused(dataset, "Keypoint 1 is at 1.6 0.3", file="labels/train/img_0.txt", line=1)


@pytest.mark.parametrize(
    ("yaml_line", "message"),
    [
        ("flip_idx: [0, 0, 2]", "'flip_idx:' must list each keypoint number from 0 to 2 exactly once; 1 is missing"),
        ("flip_idx: [1, 0]", "'flip_idx:' lists 2 keypoints but kpt_shape declares 3"),
        ("flip_idx: [1, 0, x]", "'flip_idx:' must be a list of keypoint numbers"),
    ],
    ids=["not-a-permutation", "wrong-length", "not-numbers"],
)
def test_a_bad_flip_idx_is_refused(owner_client: Client, yaml_line: str, message: str) -> None:
    dataset = upload_as(owner_client, pose_files(yaml_text=POSE_YAML.replace("flip_idx: [1, 0, 2]", yaml_line)))
    assert_refused(dataset, message, file="data.yaml")


@pytest.mark.parametrize(
    ("kpt_shape", "message"),
    [
        ("[3, 4]", "must be 2 (x y) or 3 (x y visibility)"),
        ("[0, 3]", "declares 0 keypoints; a pose dataset has 1 to 512"),
        ("[100000, 3]", "declares 100000 keypoints"),
        ("17", "must be two whole numbers"),
    ],
)
def test_a_bad_kpt_shape_is_refused(owner_client: Client, kpt_shape: str, message: str) -> None:
    text = NAMES_YAML + f"kpt_shape: {kpt_shape}\n"
    dataset = upload_as(owner_client, pose_files(yaml_text=text))
    assert_refused(dataset, message, file="data.yaml")


def test_oriented_boxes_of_seven_values_are_refused_naming_the_line(owner_client: Client) -> None:
    files = obb_files()
    files["labels/train/img_1.txt"] = b"0 0.3 0.1 0.6 0.3 0.4 0.6\n"
    dataset = upload_as(owner_client, files, Task.OBB)
    assert_refused(
        dataset,
        "This line has 7 values: a polygon of 3 points, but you chose Oriented boxes",
        file="labels/train/img_1.txt",
        line=1,
    )


def test_an_oriented_box_corner_outside_the_image_is_refused(owner_client: Client) -> None:
    files = obb_files()
    files["labels/val/img_0.txt"] = b"0 0.3 0.1 0.6 0.3 0.4 1.6 0.1 0.4\n"
    dataset = upload_as(owner_client, files, Task.OBB)
    assert_refused(dataset, "corner 3 is 0.4 1.6", file="labels/val/img_0.txt", line=1)


def test_a_class_folder_missing_from_val_is_named(owner_client: Client) -> None:
    files = {name: data for name, data in classify_files().items() if not name.startswith("val/fox/")}
    dataset = upload_as(owner_client, files)
    assert_refused(dataset, "The val split has no folder for class 'fox', which train/ has", file="val", line=None)
    assert dataset.task == Task.CLASSIFY


def test_a_class_folder_without_images_is_named(owner_client: Client) -> None:
    files = {name: data for name, data in classify_files().items() if not name.startswith("train/dog/")}
    files["train/dog/readme.txt"] = b"to do\n"
    dataset = upload_as(owner_client, files)
    assert_refused(dataset, "The class folder 'dog' of the train split holds no images", file="train/dog")


def test_an_image_loose_in_a_split_and_a_hidden_class_folder_are_named(owner_client: Client) -> None:
    files = {**classify_files(), "train/stray.jpg": jpeg(), "val/.ipynb_checkpoints/cat_0.jpg": jpeg()}
    dataset = upload_as(owner_client, files)
    assert_refused(dataset, "This image is directly in train/", file="train/stray.jpg")
    assert_refused(dataset, "This hidden folder would become a class", file="val/.ipynb_checkpoints")


def test_a_classification_zip_without_val_is_refused(owner_client: Client) -> None:
    files = {name: data for name, data in classify_files().items() if name.startswith("train/")}
    dataset = upload_as(owner_client, files)
    assert_refused(dataset, "There is no val/ folder next to train/")


def test_nine_value_labels_without_a_choice_are_ambiguous_and_can_be_validated_again(
    owner_client: Client, outsider_client: Client
) -> None:
    dataset = upload_as(owner_client, obb_files())

    assert_refused(
        dataset,
        "could be an oriented box (OBB) or a 4-point segmentation polygon",
        file="labels/train/img_0.txt",
        line=1,
    )
    assert "Upload the zip again choosing Segmentation or Oriented boxes" in problem_text(dataset)
    page = owner_client.get(reverse("training:dataset_detail", args=[dataset.uid])).content.decode()
    assert "Validate again as Segmentation" in page
    assert "Validate again as Oriented boxes" in page

    url = reverse("training:dataset_validate_again", args=[dataset.uid])
    assert owner_client.get(url).status_code == 405
    assert outsider_client.post(url, {"task": Task.OBB}).status_code == 404
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID

    response = owner_client.post(url, {"task": Task.OBB})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert (dataset.status, dataset.declared_task, dataset.errors) == (Dataset.Status.PROCESSING, Task.OBB, [])
    run_validation(dataset.pk)
    dataset.refresh_from_db()
    assert_ready(dataset, Task.OBB)
    # A ready dataset is not validated again.
    owner_client.post(url, {"task": Task.SEGMENT})
    dataset.refresh_from_db()
    assert (dataset.status, dataset.task) == (Dataset.Status.READY, Task.OBB)


def test_validating_again_needs_a_real_task(owner_client: Client) -> None:
    dataset = upload_as(owner_client, obb_files())
    owner_client.post(reverse("training:dataset_validate_again", args=[dataset.uid]), {"task": "../etc"})
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID


def test_validating_again_is_refused_without_the_csrf_token(owner_client: Client) -> None:
    dataset = upload_as(owner_client, obb_files())
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(dataset.owner)
    response = strict.post(reverse("training:dataset_validate_again", args=[dataset.uid]), {"task": Task.OBB})
    assert response.status_code == 403
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID


# --- a choice that contradicts the files ---------------------------------------------------------


def test_detection_boxes_chosen_as_segmentation_are_refused_naming_the_first_box(
    owner_client: Client, tmp_path: Path
) -> None:
    dataset = upload_as(owner_client, good_files(tmp_path), Task.SEGMENT)
    assert_refused(
        dataset,
        "This line has 5 values: a detection box, but you chose Segmentation. Upload the zip again choosing "
        "Detection (or Detect from the files)",
        file="labels/train/img_00000.txt",
        line=1,
    )
    assert dataset.task == Task.SEGMENT


def test_polygons_chosen_as_detection_are_refused(owner_client: Client) -> None:
    dataset = upload_as(owner_client, yaml_task_files(["0.6 0.6 0.9 0.65 0.8 0.9"]), Task.DETECT)
    assert_refused(
        dataset,
        "This line has 7 values: a polygon of 3 points, but you chose Detection. Upload the zip again choosing "
        "Segmentation",
        file="labels/train/img_0.txt",
        line=1,
    )


def test_keypoints_chosen_as_detection_are_refused(owner_client: Client) -> None:
    dataset = upload_as(owner_client, pose_files(), Task.DETECT)
    assert_refused(dataset, "data.yaml declares kpt_shape, which only pose datasets have, but you chose Detection")


def test_pose_chosen_without_kpt_shape_is_refused(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_as(owner_client, good_files(tmp_path), Task.POSE)
    assert_refused(dataset, "You chose Pose, but data.yaml has no kpt_shape", file="data.yaml")


def test_class_folders_chosen_as_detection_are_refused(owner_client: Client) -> None:
    dataset = upload_as(owner_client, classify_files(), Task.DETECT)
    assert_refused(
        dataset, "The zip is laid out for classification (a train/ folder and no data.yaml), but you chose Detection"
    )


def test_a_detection_zip_chosen_as_classification_is_refused(owner_client: Client, tmp_path: Path) -> None:
    dataset = upload_as(owner_client, good_files(tmp_path), Task.CLASSIFY)
    assert_refused(dataset, "You chose Classification, but the zip has no train/ folder")


def test_the_upload_form_refuses_an_unknown_task(owner_client: Client, tmp_path: Path) -> None:
    response = owner_client.post(
        reverse("training:dataset_upload"),
        {"name": "x", "task": "depth", "file": SimpleUploadedFile("x.zip", zip_bytes(good_files(tmp_path)))},
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_upload_page_offers_every_task(owner_client: Client) -> None:
    page = owner_client.get(reverse("training:dataset_upload")).content.decode()
    assert "Detect from the files" in page
    for label in Task.labels:
        assert f">{label}</option>" in page


def test_ultralytics_label_caches_in_the_zip_are_never_extracted(tmp_path: Path) -> None:
    # Ultralytics unpickles labels/train.cache (and classification's train.cache) unrestricted.
    files = {**good_files(tmp_path), "labels/train.cache": b"pickle", "train.CACHE": b"pickle"}
    archive = tmp_path / "set.zip"
    archive.write_bytes(zip_bytes(files))
    content = tmp_path / "content"
    content.mkdir()

    extract_archive(archive, content)

    extracted = {path.relative_to(content).as_posix() for path in content.rglob("*") if path.is_file()}
    assert extracted == set(files) - {"labels/train.cache", "train.CACHE"}


def test_nine_value_labels_beside_polygons_are_four_point_polygons(owner_client: Client) -> None:
    files = yaml_task_files(["0.3 0.1 0.6 0.3 0.4 0.6 0.1 0.4", "0.6 0.6 0.9 0.65 0.8 0.9"])
    dataset = upload_as(owner_client, files)
    assert_ready(dataset, Task.SEGMENT)


GREY = (128, 128, 128)


def drawn(task: str, rows: list[LabelRow], tmp_path: Path, class_id: int | None = None) -> Image.Image:
    path = tmp_path / "flat.png"
    Image.new("RGB", (100, 100), GREY).save(path)
    picture = render_sample(path, rows, ["circle", "square"], task=task, class_id=class_id)
    return Image.open(io.BytesIO(picture)).convert("RGB")


def changed(picture: Image.Image, x: int, y: int) -> bool:
    pixel = picture.getpixel((x, y))
    assert isinstance(pixel, tuple)
    return sum(abs(a - b) for a, b in zip(pixel, GREY, strict=True)) > 60


def test_samples_draw_rotated_boxes_as_outlines(tmp_path: Path) -> None:
    corners = ((0.5, 0.1), (0.9, 0.5), (0.5, 0.9), (0.1, 0.5))
    picture = drawn(Task.OBB, [LabelRow(1, 0.5, 0.5, 0.8, 0.8, points=corners)], tmp_path)
    assert changed(picture, 70, 30)  # on the edge from (50, 10) to (90, 50)
    assert not changed(picture, 50, 50)  # not filled
    assert not changed(picture, 12, 12)  # no axis-aligned box corner


def test_samples_draw_labelled_keypoints_as_dots(tmp_path: Path) -> None:
    keypoints = ((0.5, 0.5, 2.0), (0.8, 0.5, 0.0))
    picture = drawn(Task.POSE, [LabelRow(0, 0.5, 0.5, 0.8, 0.8, keypoints=keypoints)], tmp_path)
    assert changed(picture, 50, 50)  # the visible keypoint
    assert not changed(picture, 80, 50)  # visibility 0: not drawn
    assert changed(picture, 10, 50)  # the box's left edge


def test_classification_samples_carry_the_class_name(tmp_path: Path) -> None:
    picture = drawn(Task.CLASSIFY, [], tmp_path, class_id=1)
    caption = picture.crop((0, 0, 60, 20))
    assert len(caption.getcolors(maxcolors=10_000) or []) > 2  # text on a dark band
    assert not changed(picture, 80, 80)
