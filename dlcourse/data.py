"""Course datasets: the cat/non-cat photos (fetched, checked, loaded) and 2-D toy data.

The cat files are not committed; ``python -m dlcourse fetch-data`` downloads them
from public mirrors and verifies them. Every problem with them surfaces as a
:class:`DatasetError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CAT_FILES",
    "DATA_ENV_VAR",
    "FETCH_COMMAND",
    "MIRRORS",
    "DatasetError",
    "add_fetch_arguments",
    "fetch_cat_dataset",
    "fetch_main",
    "load_cat_dataset",
    "load_extra_datasets",
    "load_planar_dataset",
    "resolve_data_dir",
    "run_fetch",
    "verify_checksums",
]

DATA_ENV_VAR = "DLCOURSE_DATA"
FETCH_COMMAND = "python -m dlcourse fetch-data"

#: File name -> (size in bytes, SHA-256 hex digest) of the canonical cat files.
CAT_FILES: dict[str, tuple[int, str]] = {
    "train_catvnoncat.h5": (
        2_572_022,
        "fbe56ab67c3ae28d564e3a644189117976d6b31af0a3ce9bb17dbf22908af242",
    ),
    "test_catvnoncat.h5": (
        616_958,
        "6a9d39ce52fa85953c5834695b8534a30ed8cfd54971fb2f080b5a24d002b951",
    ),
}

#: Base URLs tried in order; a file name is appended to each. All three were seen
#: serving byte-identical copies of both files.
MIRRORS: list[str] = [
    "https://raw.githubusercontent.com/greyhatguy007/deep-learning-specialization/"
    "main/C1-NeuralNetworksAndDeepLearning/week2/W2A2/datasets/",
    "https://raw.githubusercontent.com/Hiren2002/Logistic-Regression/main/datasets/",
    "https://raw.githubusercontent.com/ramakris/coursera-deeplearning/"
    "master/neuralnetworks/week2/datasets/",
]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_LFS_PREFIX = b"version https://git-lfs"
_CLASSES = (b"non-cat", b"cat")
_IMAGE_SHAPE = (64, 64, 3)
# split -> (file name, images key, labels key, number of examples m)
_CAT_SPLITS = {
    "train": ("train_catvnoncat.h5", "train_set_x", "train_set_y", 209),
    "test": ("test_catvnoncat.h5", "test_set_x", "test_set_y", 50),
}
_CHUNK = 1 << 16


class DatasetError(Exception):
    """A dataset is missing, incomplete or malformed; the message says how to fix it."""


# --------------------------------------------------------------------------- paths


def _default_data_dir() -> Path:
    # The repository root is the parent of the package directory.
    return Path(__file__).resolve().parent.parent / "datasets"


def _locate(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """Return the data directory and a phrase saying what chose it."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir argument"
    from_env = os.environ.get(DATA_ENV_VAR, "").strip()
    if from_env:
        return Path(from_env).expanduser(), f"${DATA_ENV_VAR}"
    return _default_data_dir(), f"the default, as ${DATA_ENV_VAR} is not set"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the directory that holds (or will hold) the cat dataset files.

    Args:
        data_dir: explicit directory; wins over everything else.

    Returns:
        ``data_dir`` if given, else ``$DLCOURSE_DATA`` if set and non-empty, else
        ``<repository root>/datasets``. The directory need not exist.
    """
    return _locate(data_dir)[0]


def _fetch_hint(directory: Path, chosen_by: str, *, force: bool = False) -> str:
    """Name the command that fills ``directory``, in backquotes."""
    command = FETCH_COMMAND
    # Without --dest the command resolves the same directory we looked in.
    if chosen_by == "the data_dir argument":
        command += f" --dest {shlex.quote(str(directory))}"
    if force:
        command += " --force"
    return f"`{command}`"


# ----------------------------------------------------------------------- checksums


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _is_lfs_pointer(head: bytes) -> bool:
    return head.startswith(_LFS_PREFIX)


def _mismatch(path: Path, size: int, sha256: str) -> str | None:
    """Return why ``path`` is not the expected file, or None if it is."""
    actual_size = path.stat().st_size
    if actual_size != size:
        with open(path, "rb") as fh:
            if _is_lfs_pointer(fh.read(len(_LFS_PREFIX))):
                return f"is a Git LFS pointer ({actual_size} bytes), not the data"
        return f"has {actual_size} bytes, expected {size}"
    actual_sha = _digest(path)
    if actual_sha != sha256:
        return f"has sha256 {actual_sha[:12]}..., expected {sha256[:12]}..."
    return None


def verify_checksums(
    data_dir: str | os.PathLike | None = None,
    *,
    files: Mapping[str, tuple[int, str]] = CAT_FILES,
) -> None:
    """Check that every dataset file is present with the expected size and SHA-256.

    :func:`load_cat_dataset` checks structure, not bytes, so that other
    serialisations of the same arrays still load; this is the byte-exact check.

    Args:
        data_dir: directory to check; resolved as in :func:`resolve_data_dir`.
        files: file name -> (size in bytes, SHA-256 hex digest).

    Raises:
        DatasetError: if any file is missing or differs, with one line per file.
    """
    directory, chosen_by = _locate(data_dir)
    problems = []
    for name, (size, sha256) in files.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{path} is missing")
            continue
        reason = _mismatch(path, size, sha256)
        if reason:
            problems.append(f"{path} {reason}")
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise DatasetError(
            f"dataset files in {directory} fail verification; replace them with "
            f"{_fetch_hint(directory, chosen_by, force=True)}:\n{lines}"
        )


# ------------------------------------------------------------------------- loading


def _has_hdf5_signature(path: Path) -> bool:
    # HDF5 allows a user block before the superblock, so the signature may sit at
    # offset 0, 512, 1024, 2048, ...
    size = path.stat().st_size
    with open(path, "rb") as fh:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _check_container(path: Path, directory: Path, chosen_by: str) -> None:
    """Raise DatasetError unless ``path`` exists and looks like an HDF5 file."""
    hint = _fetch_hint(directory, chosen_by)
    if not path.is_file():
        where = f"directory chosen by {chosen_by}"
        if not directory.is_dir():
            where = f"the directory does not exist; it was chosen by {chosen_by}"
        raise DatasetError(
            f"cat dataset file not found: {path} ({where}); download it with "
            f"{hint}, or set {DATA_ENV_VAR} to a directory holding "
            f"{' and '.join(CAT_FILES)}"
        )
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(len(_LFS_PREFIX))
    replace = _fetch_hint(directory, chosen_by, force=True)
    if _is_lfs_pointer(head):
        raise DatasetError(
            f"{path} is a Git LFS pointer file ({size} bytes), not the HDF5 data: "
            "the repository it came from keeps the file in Git LFS. Run "
            f"`git lfs pull` there, or replace it with {replace}"
        )
    if not _has_hdf5_signature(path):
        raise DatasetError(
            f"{path} is not an HDF5 file (no HDF5 signature, {size} bytes); it is "
            f"probably an error page or a damaged download: replace it with {replace}"
        )


def _read_dataset(h5file, key: str, shapes, dtype_ok, dtype_name: str, context):
    """Return ``h5file[key]`` as an array after checking its shape and dtype.

    The checks use the metadata only, so a wrong file is rejected before it is read.

    Args:
        h5file: open ``h5py.File``.
        key: dataset name.
        shapes: tuple of acceptable shapes.
        dtype_ok: predicate on the dataset's numpy dtype.
        dtype_name: what ``dtype_ok`` accepts, for the message.
        context: ``(path, fix)``: the file, and the backquoted command that fixes it.
    """
    import h5py

    path, fix = context
    node = h5file.get(key)
    if node is None:
        found = ", ".join(sorted(h5file.keys())) or "nothing"
        raise DatasetError(
            f"{path} has no dataset {key!r} (it holds: {found}), so it is not the "
            f"course's cat file: replace it with {fix}"
        )
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{path}: {key!r} is a group, expected a dataset")
    if node.shape not in shapes:
        expected = " or ".join(str(shape) for shape in shapes)
        raise DatasetError(
            f"{path}: {key!r} has shape {node.shape}, expected {expected}; "
            f"replace the file with {fix}"
        )
    if not dtype_ok(node.dtype):
        raise DatasetError(
            f"{path}: {key!r} has dtype {node.dtype}, expected {dtype_name}; "
            f"replace the file with {fix}"
        )
    return node[()]


def _is_string_dtype(dtype) -> bool:
    import h5py

    # h5py reports variable-length strings as object dtype with string metadata.
    return dtype.kind in "SU" or h5py.check_string_dtype(dtype) is not None


def _read_split(path: Path, x_key: str, y_key: str, m: int, fix: str):
    """Read and validate one split.

    Returns:
        x: shape ``(m, 64, 64, 3)`` uint8; y: shape ``(1, m)`` int64;
        classes: shape ``(2,)`` bytes.
    """
    import h5py

    context = (path, fix)
    try:
        with h5py.File(path, "r") as h5file:
            x = _read_dataset(
                h5file,
                x_key,
                ((m, *_IMAGE_SHAPE),),
                lambda dtype: dtype == np.uint8,
                "uint8",
                context,
            )
            y = _read_dataset(
                h5file,
                y_key,
                ((m,), (1, m)),
                lambda dtype: np.issubdtype(dtype, np.integer),
                "an integer dtype",
                context,
            )
            classes = _read_dataset(
                h5file, "list_classes", ((2,),), _is_string_dtype, "strings", context
            )
    except OSError as exc:
        # h5py raises OSError for truncated or corrupt files; its text alone does
        # not tell a learner what to do.
        raise DatasetError(
            f"{path} could not be read as HDF5, it is probably truncated or "
            f"corrupt ({exc}): replace it with {fix}"
        ) from exc

    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1}:
        raise DatasetError(
            f"{path}: {y_key!r} holds labels {sorted(labels)}, expected only "
            f"0 (non-cat) and 1 (cat); replace the file with {fix}"
        )
    names = tuple(c.encode() if isinstance(c, str) else bytes(c) for c in classes)
    if names != _CLASSES:
        raise DatasetError(
            f"{path}: 'list_classes' is {list(names)}, expected {list(_CLASSES)}; "
            f"replace the file with {fix}"
        )
    return x, y.astype(np.int64).reshape(1, m), np.array(names)


def load_cat_dataset(data_dir: str | os.PathLike | None = None):
    """Load the cat/non-cat photos, validating their structure.

    Bytes are not hashed here (see :func:`verify_checksums`): any file holding the
    right arrays loads, including other serialisations of the same data.

    Args:
        data_dir: directory holding ``train_catvnoncat.h5`` and
            ``test_catvnoncat.h5``; resolved as in :func:`resolve_data_dir`.

    Returns:
        train_x_orig: images, shape ``(209, 64, 64, 3)``, dtype uint8.
        train_y: labels, shape ``(1, 209)``, dtype int64, 1 = cat.
        test_x_orig: images, shape ``(50, 64, 64, 3)``, dtype uint8.
        test_y: labels, shape ``(1, 50)``, dtype int64.
        classes: ``array([b'non-cat', b'cat'])``, shape ``(2,)``; index with a label.

    Raises:
        DatasetError: if a file is missing, a Git LFS pointer, not HDF5, truncated,
            lacks a dataset, or has the wrong shape, dtype or labels.
    """
    directory, chosen_by = _locate(data_dir)
    arrays = {}
    for split, (name, x_key, y_key, m) in _CAT_SPLITS.items():
        path = directory / name
        _check_container(path, directory, chosen_by)
        fix = _fetch_hint(directory, chosen_by, force=True)
        arrays[split] = _read_split(path, x_key, y_key, m, fix)
    train_x, train_y, _ = arrays["train"]
    test_x, test_y, classes = arrays["test"]
    return train_x, train_y, test_x, test_y, classes


# ------------------------------------------------------------------------ fetching


def _download(url: str, dest: Path, size: int, sha256: str, timeout: float) -> Path:
    """Download ``url`` into a verified temporary file in ``dest`` and return it.

    Raises:
        urllib.error.URLError, OSError: on network or HTTP failure.
        DatasetError: if the bytes received are not the expected file.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "dlcourse-fetch"})
    tmp = tempfile.NamedTemporaryFile(
        dir=dest, prefix=".fetch-", suffix=".part", delete=False
    )
    tmp_path = Path(tmp.name)
    try:
        sha = hashlib.sha256()
        received = 0
        head = b""
        with tmp, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                if not head:
                    head = chunk[: len(_LFS_PREFIX)]
                received += len(chunk)
                # Stop early rather than fill the disk from a wrong URL.
                if received > size:
                    raise DatasetError(f"more than the expected {size} bytes")
                sha.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            os.fsync(tmp.fileno())
        if _is_lfs_pointer(head):
            raise DatasetError(f"got a Git LFS pointer ({received} bytes), not data")
        if received != size:
            raise DatasetError(f"got {received} bytes, expected {size}")
        if sha.hexdigest() != sha256:
            raise DatasetError(
                f"sha256 {sha.hexdigest()[:12]}..., expected {sha256[:12]}..."
            )
        # NamedTemporaryFile is private (0600); the data file should be readable
        # like any other file, e.g. by students sharing an instructor's copy.
        os.chmod(tmp_path, 0o644)
        return tmp_path
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _describe(exc: BaseException) -> tuple[str, bool]:
    """Return a one-line reason and whether it means the host was unreachable."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}", False
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})", True
    if isinstance(exc, TimeoutError):
        return "timed out while downloading", False
    return str(exc) or type(exc).__name__, False


def fetch_cat_dataset(
    dest: str | os.PathLike | None = None,
    *,
    mirrors: Sequence[str] = MIRRORS,
    files: Mapping[str, tuple[int, str]] = CAT_FILES,
    force: bool = False,
    timeout: float = 30,
    report: Callable[[str], None] | None = None,
) -> Path:
    """Download the dataset files into ``dest``, verifying size and SHA-256.

    A file already present with the right size and hash is kept unless ``force``.
    Otherwise each mirror is tried in order; a download lands in a temporary file
    next to its target and is moved into place (atomically) only once verified, so
    the final path never holds a partial or unverified file.

    Args:
        dest: target directory, created if needed; resolved as in
            :func:`resolve_data_dir`.
        mirrors: base URLs tried in order; each file name is appended.
        files: file name -> (size in bytes, SHA-256 hex digest).
        force: download even when a verified copy is present.
        timeout: seconds to wait on each connection or read.
        report: called with one line per file saying what happened.

    Returns:
        The directory holding the verified files.

    Raises:
        DatasetError: if ``dest`` cannot be created or no mirror delivers a file
            that verifies; the message lists each mirror's failure on its own line.
    """
    directory = resolve_data_dir(dest)
    say = report or (lambda line: None)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(
            f"cannot create data directory {directory} ({exc.strerror}); choose "
            f"another with --dest DIR or set {DATA_ENV_VAR}"
        ) from exc
    if not mirrors:
        raise DatasetError("no mirrors given to download from")

    for name, (size, sha256) in files.items():
        target = directory / name
        if target.is_file() and not force:
            reason = _mismatch(target, size, sha256)
            if reason is None:
                say(f"{name}: already present, verified")
                continue
            say(f"{name}: present but {reason}; downloading a fresh copy")
        failures: list[tuple[str, str, bool]] = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            try:
                tmp_path = _download(url, directory, size, sha256, timeout)
            except DatasetError as exc:
                failures.append((url, str(exc), False))
                continue
            except OSError as exc:  # URLError and HTTPError are OSErrors
                failures.append((url, *_describe(exc)))
                if isinstance(exc, urllib.error.HTTPError):
                    exc.close()  # it holds the open error response
                continue
            os.replace(tmp_path, target)
            say(f"{name}: downloaded from {url}, sha256 ok")
            break
        else:
            raise DatasetError(_all_failed_message(name, files, directory, failures))
    return directory


def _all_failed_message(
    name: str,
    files: Mapping[str, tuple[int, str]],
    directory: Path,
    failures: list[tuple[str, str, bool]],
) -> str:
    lines = "\n".join(f"  - {url}: {reason}" for url, reason, _ in failures)
    if all(unreachable for _, _, unreachable in failures):
        headline = (
            f"no network: could not reach any mirror for {name}. Get the files by "
            f"hand: copy {' and '.join(files)} into {directory}, or set "
            f"{DATA_ENV_VAR} to a directory that holds them"
        )
    else:
        headline = f"could not download {name} from any mirror"
    return f"{headline}\n{lines}"


# ----------------------------------------------------------------------------- CLI


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fetch-data`` options (``--dest``, ``--force``, ``--mirror``)."""
    parser.add_argument(
        "--dest",
        metavar="DIR",
        help=f"directory to fill (default: ${DATA_ENV_VAR}, else <repo>/datasets)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="download again even if a verified copy is present",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        metavar="URL",
        help="base URL to try instead of the built-in mirrors (repeatable)",
    )


def run_fetch(args: argparse.Namespace) -> int:
    """Run ``fetch-data`` with parsed arguments; return the process exit code."""
    try:
        directory = fetch_cat_dataset(
            args.dest,
            mirrors=args.mirror or MIRRORS,
            files=CAT_FILES,
            force=args.force,
            report=print,
        )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"cat dataset ready in {directory}")
    return 0


def fetch_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dlcourse-fetch-data``: download and verify the cat dataset.

    Args:
        argv: command-line arguments without the program name; ``sys.argv[1:]``
            if None.

    Returns:
        0 on success, 1 after printing ``error: ...`` when fetching fails.
    """
    parser = argparse.ArgumentParser(
        prog="dlcourse-fetch-data",
        description="Download and verify the cat/non-cat dataset.",
    )
    add_fetch_arguments(parser)
    return run_fetch(parser.parse_args(argv))


# ------------------------------------------------------------------- toy 2-D data


def load_planar_dataset(m: int = 400, *, seed: int = 1, noise: float = 0.2):
    """Generate the "flower": two classes on alternate petals of a four-petal rose.

    Points follow ``r = 4 |sin(2 theta)|``; class 0 fills the petals in the first
    and third quadrants, class 1 the other two, so the classes sit diagonally
    opposite each other and no straight line separates them (logistic regression
    scores about 50 %), while a one-hidden-layer tanh net with 4 units reaches about
    90 %. Gaussian noise on angle and radius blurs the petals where they meet.
    The first ``m - m // 2`` columns are class 0, the rest class 1.

    Args:
        m: number of points, at least 2.
        seed: seed for ``np.random.default_rng``; the global numpy random state is
            neither used nor changed.
        noise: standard deviation of the angle (radians) and radius noise.

    Returns:
        X: coordinates, shape ``(2, m)``, float64.
        Y: labels, shape ``(1, m)``, int64, values 0 and 1.

    Raises:
        TypeError: if ``m`` is not an integer.
        ValueError: if ``m < 2`` or ``noise < 0``.
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)):
        raise TypeError(f"m must be an integer, got {type(m).__name__}")
    if m < 2:
        raise ValueError(f"m must be at least 2 (one point per class), got {m}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    petal_span = np.pi / 2
    X = np.empty((2, m))
    Y = np.empty((1, m), dtype=np.int64)
    start = 0
    for label, count in ((0, m - m // 2), (1, m // 2)):
        # Spread the class evenly over its two petals (quadrants label, label + 2)
        # so that both petals get the same share of points.
        position = np.linspace(0.0, 2.0, count, endpoint=False)
        petal = label + 2 * np.floor(position)
        theta = (petal + position % 1.0) * petal_span
        theta += noise * rng.standard_normal(count)
        radius = 4.0 * np.abs(np.sin(2.0 * theta)) + noise * rng.standard_normal(count)
        columns = slice(start, start + count)
        X[0, columns] = radius * np.cos(theta)
        X[1, columns] = radius * np.sin(theta)
        Y[0, columns] = label
        start += count
    return X, Y


def load_extra_datasets(m: int = 200, *, seed: int = 0):
    """Build four scikit-learn 2-D binary problems for exploring decision boundaries.

    Args:
        m: number of points in each dataset.
        seed: ``random_state`` passed to every generator.

    Returns:
        dict mapping ``"noisy_circles"``, ``"noisy_moons"``, ``"blobs"`` and
        ``"gaussian_quantiles"`` to ``(X, Y)`` with X shape ``(2, m)`` float64 and
        Y shape ``(1, m)`` int64, values 0 and 1.
    """
    # Imported here: scikit-learn is slow to import and only these extras need it.
    from sklearn import datasets

    raw = {
        "noisy_circles": datasets.make_circles(
            n_samples=m, factor=0.5, noise=0.3, random_state=seed
        ),
        "noisy_moons": datasets.make_moons(n_samples=m, noise=0.2, random_state=seed),
        "blobs": datasets.make_blobs(
            n_samples=m, n_features=2, centers=2, random_state=seed
        ),
        "gaussian_quantiles": datasets.make_gaussian_quantiles(
            cov=0.5, n_samples=m, n_features=2, n_classes=2, random_state=seed
        ),
    }
    return {
        name: (
            np.ascontiguousarray(X.T, dtype=np.float64),
            y.astype(np.int64).reshape(1, m),
        )
        for name, (X, y) in raw.items()
    }
