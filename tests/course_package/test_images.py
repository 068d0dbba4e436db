"""Tests for dlcourse.images: own pictures in, mislabeled pictures out."""

from __future__ import annotations

import datetime
import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from dlcourse import images
from dlcourse.images import ImageError

matplotlib.use("Agg")

CLASSES = np.array([b"non-cat", b"cat"])
STAMP = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def always(label):
    """A stand-in model that answers ``label`` for every input column."""
    return lambda X: np.full((1, X.shape[1]), float(label))


def pattern(height=64, width=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def write(path, array, fmt, **options):
    Image.fromarray(array).save(path, format=fmt, **options)
    return path


# ------------------------------------------------------------ reading pictures


def test_png_loads_into_one_column_flattened_like_the_training_set(tmp_path):
    picture = pattern()
    x = images.load_image_for_model(write(tmp_path / "p.png", picture, "PNG"))
    assert x.shape == (12288, 1) and x.dtype == np.float64
    # The same order as X = images.reshape(m, -1).T / 255 for one picture.
    np.testing.assert_array_equal(x, picture[None].reshape(1, -1).T / 255.0)


def test_jpeg_loads_with_values_in_unit_range(tmp_path):
    picture = np.zeros((64, 64, 3), np.uint8)
    picture[..., 0] = 250  # a flat red survives JPEG compression almost exactly
    x = images.load_image_for_model(write(tmp_path / "p.jpg", picture, "JPEG"))
    assert x.shape == (12288, 1)
    assert 0.0 <= x.min() and x.max() <= 1.0
    pixels = x.reshape(64, 64, 3)
    assert np.allclose(pixels[..., 0], 250 / 255, atol=0.03)
    assert np.allclose(pixels[..., 1:], 0, atol=0.03)


def test_large_non_square_picture_is_centre_cropped_then_resized(tmp_path):
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)  # left third red
    wide[:, 100:200] = (0, 255, 0)  # centre green
    wide[:, 200:] = (0, 0, 255)  # right third blue
    x = images.load_image_for_model(write(tmp_path / "wide.png", wide, "PNG"))
    pixels = x.reshape(64, 64, 3)
    np.testing.assert_allclose(pixels[:, 8:56], np.broadcast_to([0, 1, 0], (64, 48, 3)))


def test_num_px_sets_the_size_of_the_column(tmp_path):
    x = images.load_image_for_model(write(tmp_path / "p.png", pattern(), "PNG"), 32)
    assert x.shape == (32 * 32 * 3, 1)


@pytest.mark.parametrize("num_px", [0, -3, 2.5, True])
def test_num_px_must_be_a_positive_int(tmp_path, num_px):
    path = write(tmp_path / "p.png", pattern(), "PNG")
    with pytest.raises((TypeError, ValueError), match="num_px"):
        images.load_image_for_model(path, num_px)


def test_grey_and_transparent_pictures_become_rgb(tmp_path):
    grey = Image.fromarray(np.full((10, 10), 128, np.uint8), mode="L")
    grey.save(tmp_path / "grey.png")
    x = images.load_image_for_model(tmp_path / "grey.png", 4)
    np.testing.assert_allclose(x, 128 / 255)

    clear = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # fully transparent black
    clear.save(tmp_path / "clear.png")
    x = images.load_image_for_model(tmp_path / "clear.png", 4)
    np.testing.assert_allclose(x, 1.0)  # transparency shows as white


def test_a_text_file_is_rejected_with_a_clear_message(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a shopping list, not a cat\n")
    with pytest.raises(ImageError, match=r"notes\.txt is not a picture"):
        images.load_image_for_model(path)


def test_an_empty_file_is_rejected_with_a_clear_message(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.png is empty"):
        images.load_image_for_model(path)


def test_a_truncated_picture_is_rejected(tmp_path):
    data = io.BytesIO()
    Image.fromarray(pattern()).save(data, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageError, match=r"cut\.png could not be decoded"):
        images.load_image_for_model(path)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        images.load_image_for_model(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is not a file"):
        images.load_image_for_model(tmp_path)


# ----------------------------------------------------------------- classifying


def test_classify_image_file_reports_the_models_label(tmp_path):
    path = write(tmp_path / "kitty.png", pattern(), "PNG")
    prediction = images.classify_image_file(path, always(1), CLASSES)
    assert (prediction.label, prediction.class_name) == (1, "cat")
    assert prediction.image.shape == (64, 64, 3)
    assert str(prediction) == 'kitty.png: the model says "cat" (label 1)'
    jpeg = write(tmp_path / "chair.jpg", pattern(), "JPEG")
    assert images.classify_image_file(jpeg, always(0), CLASSES).class_name == "non-cat"


def test_the_model_sees_exactly_the_loaded_column(tmp_path):
    path = write(tmp_path / "p.png", pattern(seed=3), "PNG")
    seen = []

    def model(X):
        seen.append(X)
        return np.zeros((1, X.shape[1]))

    images.classify_image_file(path, model, CLASSES)
    np.testing.assert_array_equal(seen[0], images.load_image_for_model(path))


@pytest.mark.parametrize(
    "output, message",
    [(np.zeros((1, 2)), "single label"), (np.array([[0.7]]), "label 0 or 1")],
)
def test_a_model_answering_something_else_than_one_label_is_refused(output, message):
    with pytest.raises(ValueError, match=message):
        images.classify_image(lambda X: output, np.zeros((12, 1)), CLASSES)


def test_describe_upload_answers_for_a_picture_and_explains_a_bad_file():
    data = io.BytesIO()
    Image.fromarray(pattern()).save(data, format="PNG")
    message, picture = images.describe_upload(
        "cat.png", data.getvalue(), always(1), CLASSES
    )
    assert message == 'cat.png: the model says "cat" (label 1)'
    assert picture.shape == (64, 64, 3)

    message, picture = images.describe_upload("notes.txt", b"hello", always(1), CLASSES)
    assert picture is None
    assert message.startswith("Cannot use this file: notes.txt is not a picture")

    message, picture = images.describe_upload("void.jpg", b"", always(1), CLASSES)
    assert picture is None and "void.jpg is empty" in message


def test_upload_widget_classifies_what_is_uploaded(capsys):
    widgets = pytest.importorskip("ipywidgets")
    data = io.BytesIO()
    Image.fromarray(pattern()).save(data, format="PNG")
    box = images.upload_and_classify(always(1), CLASSES)
    assert isinstance(box, widgets.VBox)
    upload, _ = box.children
    assert isinstance(upload, widgets.FileUpload) and upload.accept == "image/*"
    # Outside a kernel the output area passes prints through to stdout.
    upload.value = (
        {
            "name": "notes.txt",
            "type": "text/plain",
            "size": 3,
            "content": memoryview(b"abc"),
            "last_modified": STAMP,
        },
    )
    assert "Cannot use this file: notes.txt" in capsys.readouterr().out
    upload.value = (
        {
            "name": "cat.png",
            "type": "image/png",
            "size": len(data.getvalue()),
            "content": memoryview(data.getvalue()),
            "last_modified": STAMP,
        },
    )
    assert 'cat.png: the model says "cat"' in capsys.readouterr().out


# ---------------------------------------------------------- mislabeled pictures


def test_mislabeled_indices_compares_any_label_types():
    Y = np.array([[1, 0, 1, 0]])
    predictions = np.array([[1.0, 1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(images.mislabeled_indices(Y, predictions), [1, 2])
    np.testing.assert_array_equal(images.mislabeled_indices(Y, Y == 1), [])
    with pytest.raises(ValueError, match="holds 4 labels but predictions holds 3"):
        images.mislabeled_indices(Y, np.zeros((1, 3)))


def test_show_mislabeled_titles_each_wrong_picture_with_both_classes():
    pictures = np.stack([pattern(seed=s) for s in range(6)])
    Y = np.array([[1, 0, 1, 1, 0, 0]])
    predictions = np.array([[1, 1, 0, 1, 0, 1]])
    figure = images.show_mislabeled(pictures, Y, predictions, CLASSES, ncols=2)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [
        "#1: predicted cat\ntrue non-cat",
        "#2: predicted non-cat\ntrue cat",
        "#5: predicted cat\ntrue non-cat",
    ]
    assert images.show_mislabeled(pictures, Y, Y, CLASSES) is None
    with pytest.raises(ValueError, match="expected"):
        images.show_mislabeled(pictures[:5], Y, predictions, CLASSES)


def test_upload_widget_shows_a_failing_model_instead_of_hiding_it(capsys):
    pytest.importorskip("ipywidgets")
    data = io.BytesIO()
    Image.fromarray(pattern()).save(data, format="PNG")

    def untrained(X):
        raise NameError("name 'parameters' is not defined")

    upload, _ = images.upload_and_classify(untrained, CLASSES).children
    upload.value = (
        {
            "name": "cat.png",
            "type": "image/png",
            "size": len(data.getvalue()),
            "content": memoryview(data.getvalue()),
            "last_modified": STAMP,
        },
    )
    assert "The model failed on cat.png: NameError" in capsys.readouterr().out
