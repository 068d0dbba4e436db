"""Tests for dlcourse.data: loading, validating and fetching data, and the toy sets."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from dlcourse import __main__ as cli
from dlcourse import data
from dlcourse.data import DatasetError

TRAIN = "train_catvnoncat.h5"
TEST = "test_catvnoncat.h5"


# ------------------------------------------------------------------ real data


@pytest.fixture
def real_data_dir() -> Path:
    """The directory named by DLCOURSE_DATA; skip without it, but fail in CI."""
    value = os.environ.get("DLCOURSE_DATA", "").strip()
    if not value:
        if os.environ.get("CI"):
            pytest.fail(
                "CI is set but DLCOURSE_DATA is not: CI must test the real data"
            )
        pytest.skip("DLCOURSE_DATA is not set; point it at the cat dataset files")
    return Path(value)


def test_real_data_has_canonical_shapes_dtypes_and_labels(real_data_dir):
    train_x, train_y, test_x, test_y, classes = data.load_cat_dataset(real_data_dir)
    assert train_x.shape == (209, 64, 64, 3) and train_x.dtype == np.uint8
    assert test_x.shape == (50, 64, 64, 3) and test_x.dtype == np.uint8
    assert train_y.shape == (1, 209) and train_y.dtype == np.int64
    assert test_y.shape == (1, 50) and test_y.dtype == np.int64
    assert int(train_y.sum()) == 72, "72 of the 209 training images are cats"
    assert int(test_y.sum()) == 33, "33 of the 50 test images are cats"
    assert classes.tolist() == [b"non-cat", b"cat"]


def test_real_data_passes_checksums(real_data_dir):
    data.verify_checksums(real_data_dir)


def test_data_dir_comes_from_env_var_when_no_argument(monkeypatch, tmp_path):
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    assert data.resolve_data_dir() == tmp_path
    assert data.resolve_data_dir(tmp_path / "other") == tmp_path / "other"


def test_data_dir_defaults_to_datasets_next_to_the_package(monkeypatch):
    monkeypatch.delenv("DLCOURSE_DATA", raising=False)
    package_dir = Path(data.__file__).resolve().parent
    assert data.resolve_data_dir() == package_dir.parent / "datasets"


# ---------------------------------------------------------------- bad files


def write_cat_file(path: Path, split: str = "train", **override) -> Path:
    """Write a structurally valid cat file (all-zero images) with optional changes.

    ``override`` maps a dataset name to a replacement array, or to None to omit it.
    """
    m = 209 if split == "train" else 50
    contents = {
        f"{split}_set_x": np.zeros((m, 64, 64, 3), dtype=np.uint8),
        f"{split}_set_y": (np.arange(m) % 2).astype(np.int64),
        "list_classes": np.array([b"non-cat", b"cat"]),
    }
    contents.update(override)
    with h5py.File(path, "w") as h5file:
        for key, value in contents.items():
            if value is not None:
                h5file.create_dataset(key, data=value, compression="gzip")
    return path


def write_both(directory: Path, **train_override) -> Path:
    write_cat_file(directory / TRAIN, "train", **train_override)
    write_cat_file(directory / TEST, "test")
    return directory


def test_structurally_valid_synthetic_files_load(tmp_path):
    train_x, train_y, test_x, test_y, classes = data.load_cat_dataset(
        write_both(tmp_path)
    )
    assert train_x.shape == (209, 64, 64, 3) and test_y.shape == (1, 50)
    assert classes.tolist() == [b"non-cat", b"cat"]


def test_missing_directory_names_path_env_var_and_fetch_command(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError) as info:
        data.load_cat_dataset(missing)
    message = str(info.value)
    assert str(missing / TRAIN) in message
    assert "does not exist" in message
    assert "fetch-data" in message and "DLCOURSE_DATA" in message


def test_missing_file_via_env_var_suggests_plain_fetch_command(monkeypatch, tmp_path):
    write_cat_file(tmp_path / TRAIN)
    monkeypatch.setenv("DLCOURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetError) as info:
        data.load_cat_dataset()
    message = str(info.value)
    assert str(tmp_path / TEST) in message
    assert "$DLCOURSE_DATA" in message
    assert "`python -m dlcourse fetch-data`" in message


LFS_POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:" + b"0" * 64 + b"\nsize 2572022\n"
)


def _truncated_hdf5(path: Path) -> None:
    write_cat_file(path)
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize(
    ("make_bad_train_file", "clue"),
    [
        (lambda path: path.write_bytes(LFS_POINTER), "Git LFS pointer"),
        (_truncated_hdf5, "truncated or corrupt"),
        (lambda path: path.write_text("<html>404: Not Found</html>\n"), "not an HDF5"),
        (lambda path: path.write_bytes(b""), "not an HDF5"),
    ],
    ids=["lfs-pointer", "truncated-hdf5", "html-page", "empty-file"],
)
def test_damaged_file_gives_clear_dataset_error(tmp_path, make_bad_train_file, clue):
    write_cat_file(tmp_path / TEST, "test")
    make_bad_train_file(tmp_path / TRAIN)
    with pytest.raises(DatasetError, match=clue) as info:
        data.load_cat_dataset(tmp_path)
    assert str(tmp_path / TRAIN) in str(info.value)
    assert "fetch-data" in str(info.value)


def test_truncated_real_file_gives_dataset_error(real_data_dir, tmp_path):
    shutil.copy(real_data_dir / TEST, tmp_path / TEST)
    (tmp_path / TRAIN).write_bytes((real_data_dir / TRAIN).read_bytes()[:1000])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        data.load_cat_dataset(tmp_path)


@pytest.mark.parametrize(
    ("override", "clues"),
    [
        ({"train_set_y": None}, ["no dataset 'train_set_y'"]),
        ({"list_classes": None}, ["no dataset 'list_classes'"]),
        (
            {"train_set_x": np.zeros((209, 64, 64), dtype=np.uint8)},
            ["'train_set_x'", "(209, 64, 64)", "(209, 64, 64, 3)"],
        ),
        (
            {"train_set_y": np.zeros(208, dtype=np.int64)},
            ["'train_set_y'", "(208,)", "(209,)"],
        ),
        (
            {"train_set_x": np.zeros((209, 64, 64, 3), dtype=np.float32)},
            ["'train_set_x'", "float32", "uint8"],
        ),
        (
            {"train_set_y": np.zeros(209, dtype=np.float64)},
            ["'train_set_y'", "float64", "integer"],
        ),
        ({"train_set_y": np.full(209, 2, dtype=np.int64)}, ["labels [2]", "0", "1"]),
        ({"list_classes": np.array([b"dog", b"cat"])}, ["list_classes", "dog"]),
    ],
    ids=[
        "missing-labels",
        "missing-classes",
        "images-wrong-shape",
        "labels-wrong-length",
        "images-float",
        "labels-float",
        "label-2",
        "wrong-class-names",
    ],
)
def test_malformed_contents_are_named_in_the_error(tmp_path, override, clues):
    write_both(tmp_path, **override)
    with pytest.raises(DatasetError) as info:
        data.load_cat_dataset(tmp_path)
    message = str(info.value)
    assert str(tmp_path / TRAIN) in message
    for clue in clues:
        assert clue in message


def test_verify_checksums_reports_each_bad_file(tmp_path):
    (tmp_path / TRAIN).write_bytes(LFS_POINTER)
    with pytest.raises(DatasetError) as info:
        data.verify_checksums(tmp_path)
    message = str(info.value)
    assert "Git LFS pointer" in message
    assert f"{tmp_path / TEST} is missing" in message
    assert "--force" in message


# ---------------------------------------------------------------- fetching

GOOD = {"alpha.bin": os.urandom(3000), "beta.bin": os.urandom(5000)}
FILES = {
    name: (len(content), hashlib.sha256(content).hexdigest())
    for name, content in GOOD.items()
}


class LocalMirrors:
    """An HTTP server on 127.0.0.1 serving several mirror directories.

    ``good/`` holds the files, ``corrupt/`` copies with one byte flipped, ``short/``
    truncated copies and ``lfs/`` Git LFS pointers; any other directory gives 404.
    """

    def __init__(self, root: Path):
        for name, content in GOOD.items():
            variants = {
                "good": content,
                "corrupt": bytes([content[0] ^ 0xFF]) + content[1:],
                "short": content[:-10],
                "lfs": LFS_POINTER,
            }
            for mirror, payload in variants.items():
                (root / mirror).mkdir(exist_ok=True)
                (root / mirror / name).write_bytes(payload)
        self.requests: list[str] = []
        mirrors = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def send_head(self):
                mirrors.requests.append(self.path)
                return super().send_head()

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    def url(self, mirror: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{mirror}/"


@pytest.fixture(scope="module")
def mirror_server(tmp_path_factory):
    local = LocalMirrors(tmp_path_factory.mktemp("served"))
    local.thread.start()
    yield local
    local.server.shutdown()
    local.server.server_close()


@pytest.fixture
def mirrors(mirror_server):
    """The shared local mirror server, with its request log cleared."""
    mirror_server.requests.clear()
    return mirror_server


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def fetch(dest, mirror_urls, **kwargs):
    return data.fetch_cat_dataset(dest, mirrors=mirror_urls, files=FILES, **kwargs)


def assert_dest_holds_exactly_good_files(dest: Path) -> None:
    assert sorted(p.name for p in dest.iterdir()) == sorted(GOOD)
    for name, content in GOOD.items():
        assert (dest / name).read_bytes() == content


def test_fetch_downloads_and_verifies_each_file(mirrors, tmp_path):
    dest = tmp_path / "new" / "dir"
    lines = []
    assert fetch(dest, [mirrors.url("good")], report=lines.append) == dest
    assert_dest_holds_exactly_good_files(dest)
    assert lines == [
        f"{name}: downloaded from {mirrors.url('good')}{name}, sha256 ok"
        for name in GOOD
    ]


@pytest.mark.parametrize("bad", ["corrupt", "short", "lfs"])
def test_fetch_of_bad_bytes_leaves_nothing_in_dest(mirrors, tmp_path, bad):
    dest = tmp_path / "dest"
    with pytest.raises(DatasetError, match="could not download alpha.bin"):
        fetch(dest, [mirrors.url(bad)])
    assert list(dest.iterdir()) == [], "no final file and no temporary file remain"


@pytest.mark.parametrize("first", ["missing", "corrupt", "lfs"])
def test_fetch_falls_back_to_the_next_mirror(mirrors, tmp_path, first):
    fetch(tmp_path, [mirrors.url(first), mirrors.url("good")])
    assert_dest_holds_exactly_good_files(tmp_path)
    assert f"/{first}/alpha.bin" in mirrors.requests


def test_fetch_failure_lists_every_mirror_on_its_own_line(
    mirrors, tmp_path, closed_port_url
):
    urls = [mirrors.url("missing"), mirrors.url("corrupt"), closed_port_url]
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path, urls)
    lines = str(info.value).splitlines()
    assert "no network" not in lines[0], "one mirror answered, so the network is up"
    assert len(lines) == 1 + len(urls)
    assert "HTTP 404" in lines[1] and urls[0] in lines[1]
    assert "sha256" in lines[2] and urls[1] in lines[2]
    assert "unreachable" in lines[3] and closed_port_url in lines[3]
    assert list(tmp_path.iterdir()) == []


def test_fetch_with_no_reachable_mirror_says_no_network(tmp_path, closed_port_url):
    with pytest.raises(DatasetError) as info:
        fetch(tmp_path, [closed_port_url, closed_port_url + "other/"])
    headline = str(info.value).splitlines()[0]
    assert headline.startswith("no network")
    assert str(tmp_path) in headline and "DLCOURSE_DATA" in headline
    assert list(tmp_path.iterdir()) == []


def test_fetch_keeps_a_verified_file_without_any_request(mirrors, tmp_path):
    for name, content in GOOD.items():
        (tmp_path / name).write_bytes(content)
    lines = []
    fetch(tmp_path, [mirrors.url("good")], report=lines.append)
    assert mirrors.requests == []
    assert lines == [f"{name}: already present, verified" for name in GOOD]


def test_fetch_replaces_a_present_but_wrong_file(mirrors, tmp_path):
    (tmp_path / "alpha.bin").write_bytes(LFS_POINTER)
    (tmp_path / "beta.bin").write_bytes(GOOD["beta.bin"])
    lines = []
    fetch(tmp_path, [mirrors.url("good")], report=lines.append)
    assert_dest_holds_exactly_good_files(tmp_path)
    assert "Git LFS pointer" in lines[0]
    assert mirrors.requests == ["/good/alpha.bin"]


def test_fetch_force_downloads_even_verified_files(mirrors, tmp_path):
    for name, content in GOOD.items():
        (tmp_path / name).write_bytes(content)
    fetch(tmp_path, [mirrors.url("good")], force=True)
    assert sorted(mirrors.requests) == ["/good/alpha.bin", "/good/beta.bin"]
    assert_dest_holds_exactly_good_files(tmp_path)


def test_failed_forced_fetch_keeps_the_existing_file(mirrors, tmp_path):
    (tmp_path / "alpha.bin").write_bytes(GOOD["alpha.bin"])
    with pytest.raises(DatasetError):
        fetch(tmp_path, [mirrors.url("corrupt")], force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["alpha.bin"]
    assert (tmp_path / "alpha.bin").read_bytes() == GOOD["alpha.bin"]


# --------------------------------------------------------------------- CLI


@pytest.fixture
def small_file_table(monkeypatch):
    """Make the CLI fetch the small served files instead of the cat files."""
    monkeypatch.setattr(data, "CAT_FILES", FILES)


@pytest.mark.parametrize("main", [data.fetch_main, cli.main], ids=["script", "module"])
def test_cli_downloads_then_reports_files_already_present(
    mirrors, tmp_path, capsys, small_file_table, main
):
    argv = ["--dest", str(tmp_path), "--mirror", mirrors.url("good")]
    if main is cli.main:
        argv.insert(0, "fetch-data")

    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in GOOD:
        assert f"{name}: downloaded from {mirrors.url('good')}{name}, sha256 ok" in out

    assert main(argv) == 0
    out = capsys.readouterr().out
    for name in GOOD:
        assert f"{name}: already present, verified" in out


def test_cli_failure_exits_1_with_an_error_line(
    mirrors, tmp_path, capsys, small_file_table
):
    argv = ["--dest", str(tmp_path), "--mirror", mirrors.url("missing")]
    assert data.fetch_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: could not download alpha.bin")
    assert "HTTP 404" in captured.err
    assert "Traceback" not in captured.err


def test_module_cli_requires_a_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


# ---------------------------------------------------------------- toy data


def test_planar_dataset_shapes_dtypes_and_balance():
    X, Y = data.load_planar_dataset()
    assert X.shape == (2, 400) and X.dtype == np.float64
    assert Y.shape == (1, 400) and Y.dtype == np.int64
    assert np.bincount(Y.ravel()).tolist() == [200, 200]


def test_planar_dataset_is_deterministic_and_leaves_global_rng_alone():
    # The legacy global state is what the step-by-step notebooks seed and rely on.
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()  # noqa: NPY002
    X1, Y1 = data.load_planar_dataset(seed=5)
    after = np.random.get_state()  # noqa: NPY002
    X2, Y2 = data.load_planar_dataset(seed=5)
    X3, _ = data.load_planar_dataset(seed=6)
    assert np.array_equal(X1, X2) and np.array_equal(Y1, Y2)
    assert not np.array_equal(X1, X3)
    assert np.array_equal(before[1], after[1]) and before[2] == after[2]


def test_planar_dataset_defeats_a_linear_classifier():
    from sklearn.linear_model import LogisticRegression

    X, Y = data.load_planar_dataset()
    accuracy = LogisticRegression().fit(X.T, Y.ravel()).score(X.T, Y.ravel())
    assert accuracy < 0.65


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"m": 1}, ValueError), ({"m": 10.0}, TypeError), ({"noise": -0.1}, ValueError)],
)
def test_planar_dataset_rejects_bad_arguments(kwargs, error):
    with pytest.raises(error):
        data.load_planar_dataset(**kwargs)


def test_extra_datasets_are_binary_2d_and_deterministic():
    first = data.load_extra_datasets(m=60)
    second = data.load_extra_datasets(m=60)
    assert set(first) == {"noisy_circles", "noisy_moons", "blobs", "gaussian_quantiles"}
    for name, (X, Y) in first.items():
        assert X.shape == (2, 60) and X.dtype == np.float64, name
        assert Y.shape == (1, 60) and Y.dtype == np.int64, name
        assert set(np.unique(Y).tolist()) == {0, 1}, name
        assert np.array_equal(X, second[name][0]), name
