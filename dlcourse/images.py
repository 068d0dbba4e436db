"""Pictures in and out of the cat classifiers: your own photo, and the mistakes.

- :func:`load_image_for_model` turns an image file into one input column
  ``x (num_px * num_px * 3, 1)`` scaled to [0, 1], flattened exactly like the
  training set (``X = images.reshape(m, -1).T / 255``).
- :func:`classify_image_file` does that and asks a model for its label;
  :func:`upload_and_classify` puts a file-upload button in a notebook that does
  the same. All the widget's logic is in :func:`describe_upload`, an ordinary
  function, so it is tested without a browser.
- :func:`show_mislabeled` draws the pictures a model gets wrong.

A model is passed as ``predict_fn``: a function from inputs ``X (n_x, k)`` to
labels 0/1 of shape ``(1, k)``, e.g. ``lambda X: predict(w, b, X)``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ImageError",
    "Prediction",
    "classify_image",
    "classify_image_file",
    "describe_upload",
    "image_to_vector",
    "load_image_for_model",
    "mislabeled_indices",
    "show_mislabeled",
    "upload_and_classify",
]

#: Side of the square pictures the cat models are trained on.
NUM_PX = 64


class ImageError(ValueError):
    """A file cannot be used as a picture; the message says which and why."""


@dataclass(frozen=True)
class Prediction:
    """What a model says about one picture.

    Attributes:
        name: the file name the picture came from.
        label: the predicted label, 0 or 1.
        class_name: the name of that label, e.g. ``"cat"``.
        image: the picture as the model saw it, shape (num_px, num_px, 3), uint8.
    """

    name: str
    label: int
    class_name: str
    image: np.ndarray

    def __str__(self) -> str:
        return f'{self.name}: the model says "{self.class_name}" (label {self.label})'


def _class_names(classes) -> list[str]:
    return [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in classes]


def _check_num_px(num_px) -> int:
    if isinstance(num_px, bool) or not isinstance(num_px, (int, np.integer)):
        raise TypeError(f"num_px must be a positive int, got {num_px!r}")
    if num_px < 1:
        raise ValueError(f"num_px must be a positive int, got {num_px}")
    return int(num_px)


def _decode(data: bytes, name: str, num_px: int) -> np.ndarray:
    """Decode image bytes into a (num_px, num_px, 3) uint8 RGB array."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes): it holds no picture")
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()  # decode now: a truncated file fails here, not later
            # Phone photos store their rotation in EXIF; apply it before cropping.
            picture = ImageOps.exif_transpose(opened)
            if picture.mode in ("RGBA", "LA") or "transparency" in picture.info:
                # Transparent areas become white rather than arbitrary colours.
                rgba = picture.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                picture = Image.alpha_composite(white, rgba)
            picture = picture.convert("RGB")
    except UnidentifiedImageError:
        raise ImageError(
            f"{name} is not a picture Pillow can read; use a PNG, JPEG, GIF, BMP "
            "or WebP image"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{name} could not be decoded as an image: {error}") from None
    # Crop the centre to a square, then resize: the training pictures are square,
    # and squashing a 4:3 photo would distort the cat.
    square = ImageOps.fit(picture, (num_px, num_px), Image.Resampling.LANCZOS)
    return np.asarray(square, dtype=np.uint8)


def image_to_vector(image: np.ndarray) -> np.ndarray:
    """Flatten one (num_px, num_px, 3) uint8 picture into a model input column.

    Args:
        image: RGB picture, shape (num_px, num_px, 3), values 0..255.

    Returns:
        x: shape (num_px * num_px * 3, 1), float64 in [0, 1], in the order of
        ``images.reshape(m, -1).T / 255``.

    Raises:
        ValueError: if ``image`` is not (h, w, 3).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image has shape {image.shape}, expected (num_px, num_px, 3)")
    return image.reshape(1, -1).T.astype(np.float64) / 255.0


def _read(path, num_px: int) -> tuple[np.ndarray, str]:
    path = Path(os.fspath(path))
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if not path.is_file():
        raise ImageError(f"{path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"{path} could not be read: {error}") from None
    return _decode(data, path.name, num_px), path.name


def load_image_for_model(path, num_px: int = NUM_PX) -> np.ndarray:
    """Read an image file and turn it into one input column for the cat models.

    The picture is converted to RGB (transparency becomes white), its centre is
    cropped to a square and resized to ``num_px x num_px`` with Pillow.

    Args:
        path: image file (PNG, JPEG, GIF, BMP, WebP, ...).
        num_px: side of the square the model expects (64 for the cat models).

    Returns:
        x: shape (num_px * num_px * 3, 1), float64 in [0, 1].

    Raises:
        FileNotFoundError: if there is no such file.
        ImageError (a ValueError): if the file is empty, unreadable or not an
            image.
    """
    image, _ = _read(path, _check_num_px(num_px))
    return image_to_vector(image)


def classify_image(predict_fn: Callable, x: np.ndarray, classes) -> tuple[int, str]:
    """Ask a model for the label of one input column.

    Args:
        predict_fn: maps inputs ``X (n_x, k)`` to labels 0/1, shape (1, k).
        x: one input, shape (n_x, 1).
        classes: names of the labels, e.g. ``array([b'non-cat', b'cat'])``.

    Returns:
        label: 0 or 1, an int.
        class_name: its name, e.g. ``"cat"``.

    Raises:
        ValueError: if ``predict_fn`` does not return a single label 0 or 1.
    """
    output = np.asarray(predict_fn(x))
    if output.size != 1:
        raise ValueError(
            f"predict_fn returned shape {output.shape} for one picture; expected "
            "a single label, shape (1, 1)"
        )
    value = float(output.reshape(()))
    if value not in (0.0, 1.0):
        raise ValueError(f"predict_fn returned {value}; expected a label 0 or 1")
    label = int(value)
    return label, _class_names(classes)[label]


def classify_image_file(
    path, predict_fn: Callable, classes, num_px: int = NUM_PX
) -> Prediction:
    """Classify the picture in an image file.

    Args:
        path: image file.
        predict_fn: maps inputs ``X (n_x, k)`` to labels 0/1, shape (1, k).
        classes: names of the labels, indexed by label.
        num_px: side of the square the model expects.

    Returns:
        A :class:`Prediction`; ``print`` it for a one-line answer.

    Raises:
        FileNotFoundError: if there is no such file.
        ImageError (a ValueError): if the file is empty, unreadable or not an
            image.
    """
    image, name = _read(path, _check_num_px(num_px))
    label, class_name = classify_image(predict_fn, image_to_vector(image), classes)
    return Prediction(name, label, class_name, image)


def describe_upload(
    name: str, content: bytes, predict_fn: Callable, classes, num_px: int = NUM_PX
) -> tuple[str, np.ndarray | None]:
    """Classify an uploaded file and say what the model thinks.

    This is everything the upload widget does, as a plain function. A file that
    is not a usable picture gives a message saying why, not an exception.

    Args:
        name: the uploaded file's name.
        content: its bytes.
        predict_fn: maps inputs ``X (n_x, k)`` to labels 0/1, shape (1, k).
        classes: names of the labels, indexed by label.
        num_px: side of the square the model expects.

    Returns:
        message: the model's answer, or what is wrong with the file.
        image: the picture as the model saw it, (num_px, num_px, 3) uint8, or
        None if the file could not be used.

    Raises:
        ValueError: if ``predict_fn`` does not return one label 0 or 1.
    """
    try:
        image = _decode(bytes(content), name, _check_num_px(num_px))
    except ImageError as error:
        return f"Cannot use this file: {error}", None
    label, class_name = classify_image(predict_fn, image_to_vector(image), classes)
    return str(Prediction(name, label, class_name, image)), image


def upload_and_classify(predict_fn: Callable, classes, num_px: int = NUM_PX):
    """Build a notebook widget: upload a picture, see what the model says.

    Args:
        predict_fn: maps inputs ``X (n_x, k)`` to labels 0/1, shape (1, k).
        classes: names of the labels, indexed by label.
        num_px: side of the square the model expects.

    Returns:
        An ``ipywidgets.VBox`` holding the upload button and an output area;
        display it (make it the last line of a cell).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="Picture")
    output = widgets.Output()

    def on_upload(change) -> None:
        output.clear_output()
        with output:
            for item in change["new"]:
                try:
                    message, image = describe_upload(
                        item["name"], item["content"], predict_fn, classes, num_px
                    )
                except Exception as error:  # noqa: BLE001
                    # A widget callback's exception would only reach Jupyter's
                    # log; show it where the user is looking instead.
                    message = f"The model failed on {item['name']}: {error!r}"
                    image = None
                print(message)
                if image is not None:
                    fig, ax = plt.subplots(figsize=(2.5, 2.5))
                    ax.imshow(image)
                    ax.axis("off")
                    display(fig)
                    plt.close(fig)

    upload.observe(on_upload, names="value")
    return widgets.VBox([upload, output])


def mislabeled_indices(Y, predictions) -> np.ndarray:
    """Return the indices of the examples whose prediction differs from the label.

    Args:
        Y: true labels, shape (1, m) or (m,).
        predictions: predicted labels, same number of values.

    Returns:
        Indices into the m examples, ascending, shape (k,).

    Raises:
        ValueError: if the two do not hold the same number of labels.
    """
    Y = np.asarray(Y).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    if Y.shape != predictions.shape:
        raise ValueError(
            f"Y holds {Y.size} labels but predictions holds {predictions.size}"
        )
    return np.flatnonzero(Y.astype(np.float64) != predictions.astype(np.float64))


def show_mislabeled(
    images: np.ndarray,
    Y,
    predictions,
    classes,
    *,
    max_images: int = 20,
    ncols: int = 5,
    suptitle: str | None = None,
):
    """Draw the pictures a model gets wrong, each titled predicted vs true class.

    Args:
        images: the original pictures, shape (m, num_px, num_px, 3), uint8.
        Y: true labels, shape (1, m).
        predictions: predicted labels, shape (1, m).
        classes: names of the labels, indexed by label.
        max_images: draw at most this many (the first ones).
        ncols: pictures per row.
        suptitle: optional title above the grid.

    Returns:
        The matplotlib ``Figure``, or None if no picture is mislabeled.

    Raises:
        ValueError: if ``images`` does not hold one picture per label.
    """
    from dlcourse.plots import show_image_grid

    images = np.asarray(images)
    wrong = mislabeled_indices(Y, predictions)
    if images.ndim != 4 or images.shape[0] != np.asarray(Y).size:
        raise ValueError(
            f"images has shape {images.shape}, expected (m, num_px, num_px, 3) with "
            f"m = {np.asarray(Y).size}"
        )
    if wrong.size == 0:
        return None
    names = _class_names(classes)
    Y, predictions = np.asarray(Y).reshape(-1), np.asarray(predictions).reshape(-1)
    shown: Sequence[int] = wrong[:max_images]
    titles = [
        f"#{i}: predicted {names[int(predictions[i])]}\ntrue {names[int(Y[i])]}"
        for i in shown
    ]
    return show_image_grid(
        images[shown], titles, ncols=ncols, size=2.2, suptitle=suptitle
    )
