"""The wheels and the student pack: what ships, what never ships, and that it works.

The slow end-to-end test installs the pack's wheel into a fresh virtual
environment outside the repository (``--no-index``: only wheels fetched
beforehand), then runs every assignment's reference solution against the
visible checks in a kernel of that environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from conftest import assignments, source_notebook

from autograder import REPO_ROOT
from autograder.authoring.pack import (
    LEAK_MARKERS,
    MARKER,
    PackError,
    audit_pack,
    build_pack,
    student_pyproject,
)
from autograder.cli import main
from autograder.errors import UsageError
from dlcourse.checks import PASS_MESSAGE

EXPECTED = [f"dlcourse/testcases/expected/{a}.json" for a in assignments()]


def _members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _pip(python: Path | str, *args: str, env=None, cwd=None) -> None:
    done = subprocess.run(
        [str(python), "-m", "pip", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    return build_pack(tmp_path_factory.mktemp("pack") / "student-pack", log=print)


# ------------------------------------------------------------- the project


@pytest.mark.slow
def test_the_project_wheel_ships_the_visible_checks_expected_outputs(tmp_path):
    # Build from a copy, so that no build/ or egg-info lands in the repository.
    src = tmp_path / "src"
    for name in ("dlcourse", "autograder"):
        shutil.copytree(
            REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, src / name)
    _pip(
        sys.executable, "wheel", "--no-deps", "-q", "-w", str(tmp_path / "w"), str(src)
    )
    (wheel,) = (tmp_path / "w").glob("*.whl")
    members = _members(wheel)
    assert set(EXPECTED) <= set(members)
    assert "autograder/hidden/__init__.py" in members
    packaged = {m for m in members if m.startswith(("dlcourse/", "autograder/"))}
    on_disk = {
        str(p.relative_to(REPO_ROOT))
        for folder in ("dlcourse", "autograder")
        for p in (REPO_ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk == packaged, "every file of the packages is in the wheel"


# ------------------------------------------------------- the student wheel


def test_student_distribution_declares_only_what_students_need():
    text = student_pyproject()
    assert 'name = "dlcourse"' in text
    dependencies = next(line for line in text.splitlines() if line.startswith("dep"))
    for name in ("numpy", "h5py", "matplotlib", "ipywidgets", "scikit-learn"):
        assert f'"{name}' in dependencies
    for name in ("nbgrader", "nbclient", "nbformat"):
        assert name not in dependencies
    assert 'hub = ["nbgrader==0.9.6"]' in text
    assert '"dlcourse.testcases" = ["expected/*.json"]' in text
    assert "autograder" not in text


@pytest.mark.slow
def test_pack_holds_releases_companions_wheel_and_readme(pack):
    for assignment in assignments():
        release = REPO_ROOT / "release" / assignment
        for path in release.iterdir():
            if path.is_file():
                copied = pack / "assignments" / assignment / path.name
                assert copied.read_bytes() == path.read_bytes()
    assert (pack / "assignments/05_deep_network_application/dnn_helpers.py").is_file()
    assert (pack / "notebooks" / "00_start_here.ipynb").is_file()
    (wheel,) = (pack / "wheels").glob("dlcourse-*-py3-none-any.whl")
    members = _members(wheel)
    assert set(EXPECTED) <= set(members)
    assert not [m for m in members if m.startswith("autograder")]
    readme = (pack / "README.md").read_text()
    for words in (
        f"pip install wheels/{wheel.name}",
        "python -m dlcourse fetch-data",
        "DLCOURSE_DATA",
        "train_catvnoncat.h5",
        PASS_MESSAGE,
    ):
        assert words in readme


@pytest.mark.slow
def test_pack_contains_no_solution_no_hidden_test_and_no_grader(pack):
    assert audit_pack(pack, assignments=assignments()) == []
    names = [str(p.relative_to(pack)) for p in pack.rglob("*")]
    assert not [n for n in names if "source" in n.split("/")]
    assert not [n for n in names if "autograder" in n.split("/")]
    for path in pack.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".whl":
                with zipfile.ZipFile(path) as wheel:
                    data = b"".join(wheel.read(m) for m in wheel.namelist())
            assert b"BEGIN SOLUTION" not in data, path
            assert b"HIDDEN TESTS" not in data, path


def test_audit_finds_solutions_hidden_tests_and_grader_files(tmp_path):
    (tmp_path / "assignments" / "a").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION")]
    )
    nbformat.write(nb, str(tmp_path / "assignments" / "a" / "a.ipynb"))
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "dlcourse-0-py3-none-any.whl", "w") as w:
        w.writestr("autograder/hidden/a.py", "GRADER = 1\n")
        w.writestr("dlcourse/x.py", "# ### BEGIN HIDDEN TESTS\n")
    problems = audit_pack(tmp_path, assignments=["a"])
    text = "\n".join(problems)
    assert "a.ipynb: contains '### BEGIN SOLUTION'" in text
    assert "a.ipynb: contains '### END SOLUTION'" in text
    assert "!autograder/hidden/a.py: grader-only path" in text
    assert "!dlcourse/x.py: contains '### BEGIN HIDDEN TESTS'" in text
    assert "lacks dlcourse/testcases/expected/a.json" in text
    assert len(LEAK_MARKERS) == 4


def test_pack_refuses_to_replace_a_folder_that_is_not_a_pack(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="is not a student pack"):
        build_pack(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(UsageError, match="outside the course's own folders"):
        build_pack(REPO_ROOT / "release" / "pack")


def test_pack_command_maps_a_refusal_to_its_exit_code(tmp_path, capsys):
    (tmp_path / "keep").write_text("x")
    assert main(["pack", "--out", str(tmp_path)]) == UsageError.exit_code
    assert "is not a student pack" in capsys.readouterr().err
    assert PackError.exit_code not in (0, UsageError.exit_code)


@pytest.mark.slow
def test_pack_replaces_its_own_earlier_build(pack, tmp_path):
    out = tmp_path / "again"
    build_pack(out, log=lambda _: None)
    (out / "stale.txt").write_text("left over")
    build_pack(out, log=lambda _: None)
    assert (out / MARKER).is_file() and not (out / "stale.txt").exists()


# ------------------------------------------- a student's fresh environment


def _data_dir() -> Path:
    from dlcourse.data import DatasetError, resolve_data_dir, verify_checksums

    try:
        verify_checksums()
    except DatasetError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test with the cat data: {error}")
        pytest.skip(f"the cat data is not available: {error}")
    return resolve_data_dir()


def _student_env(venv: Path, home: Path, **extra: str) -> dict:
    """A student's shell: only the fresh environment and system tools on PATH."""
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "JUPYTER_PREFER_ENV_PATH": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.update(extra)
    return env


#: Runs in the fresh environment: execute one notebook, write it back.
DRIVER = """\
import sys
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, path)
"""

PROBE = (
    "import sys, dlcourse\n"
    "print('PREFIX', sys.prefix)\n"
    "print('DLCOURSE', dlcourse.__file__)\n"
    "try:\n"
    "    import autograder\n"
    "except ModuleNotFoundError:\n"
    "    print('NO AUTOGRADER')\n"
)


def _without_hidden_tests(assignment: str):
    """The source notebook as nbgrader's ClearHiddenTests leaves it."""
    from nbgrader.preprocessors import ClearHiddenTests

    nb = nbformat.read(str(source_notebook(assignment)), as_version=4)
    nb, _ = ClearHiddenTests().preprocess(nb, {})
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    return nb


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


@pytest.fixture(scope="module")
def student_venv(pack, tmp_path_factory) -> Path:
    """A fresh environment outside the repository with only the pack's wheel."""
    base = tmp_path_factory.mktemp("student")
    (wheel,) = (pack / "wheels").glob("*.whl")
    # Fetch every dependency once (as a class's wheelhouse would), pinned to the
    # versions of the lock file; then install with no index at all.
    wheelhouse = base / "wheelhouse"
    _pip(
        sys.executable,
        "download",
        "-q",
        "--only-binary",
        ":all:",
        "-c",
        str(REPO_ROOT / "requirements.lock"),
        "-d",
        str(wheelhouse),
        str(wheel),
        "ipykernel",
        "nbclient",
        "nbformat",
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = _student_env(venv, base)
    _pip(
        venv / "bin" / "python",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        str(wheel),
        "ipykernel",
        "nbclient",
        "nbformat",
        env=env,
        cwd=base,
    )
    return venv


@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignments())
def test_reference_passes_every_visible_check_in_a_fresh_student_env(
    assignment, pack, student_venv, tmp_path
):
    needs_data = "load_cat_dataset" in source_notebook(assignment).read_text()
    data = _data_dir() if needs_data else None
    work = tmp_path / assignment
    shutil.copytree(pack / "assignments" / assignment, work)
    (work / f"{assignment}.ipynb").unlink()
    notebook = work / f"{assignment}.ipynb"
    nbformat.write(_without_hidden_tests(assignment), str(notebook))
    assert "HIDDEN TESTS" not in notebook.read_text()

    env = _student_env(student_venv, tmp_path)
    if data is not None:
        env["DLCOURSE_DATA"] = str(data)
    python = student_venv / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", DRIVER, str(notebook), str(work)],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    nb = nbformat.read(str(notebook), as_version=4)
    probe = _text(nb.cells[0])
    assert f"PREFIX {student_venv}" in probe
    assert f"DLCOURSE {student_venv}" in probe, "dlcourse comes from the wheel"
    assert "NO AUTOGRADER" in probe
    graded = [
        c
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]  # a written answer (markdown) is graded by hand
    assert graded, "the notebook has graded cells"
    for cell in graded:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        assert PASS_MESSAGE in _text(cell), f"{grade_id}: {_text(cell)[-500:]}"
    errors = [
        o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors
