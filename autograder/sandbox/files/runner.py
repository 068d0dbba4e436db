"""Compute a student's outputs inside the sandbox; only data goes back.

Standalone (standard library and numpy only): :mod:`autograder.sandbox.command` binds
this file read-only into the sandbox, and :mod:`autograder.verify` (the trusted
side) starts it as ``python runner.py`` with its stdin and stdout as the
only channel. The trusted side sends:

- ``load``: the code of the student's cells; they run here, in a fresh
  namespace, each in turn (an error ends that cell, as in a notebook);
- ``call``: a function name, arguments, and the names to replace by correct
  versions while it runs (with the reference code of just those functions);
- ``exit``.

Every message is a *frame*: ``b"AGS1"``, two big-endian 8-byte lengths, a JSON
header and an optional ``.npz`` payload holding the arrays the header refers to.
Values are encoded by :func:`encode` as JSON trees of numbers, strings, tuples,
lists, dicts and array references; nothing is pickled and no code ever travels
back. The trusted side decodes replies with :func:`decode`, which accepts only
plain numeric arrays and caps every size.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import signal
import struct
import sys
import traceback
import types
import zipfile

import numpy as np

# The student's code runs in this process and may replace builtins (say
# ``builtins.float``); module globals shadow builtins, so keeping the originals
# here means such tampering cannot garble the runner's own replies.
globals().update(
    {
        name: getattr(builtins, name)
        for name in (
            "bool", "bytes", "callable", "complex", "dict", "float", "getattr",
            "int", "isinstance", "len", "list", "max", "min", "range", "repr",
            "sorted", "str", "sum", "tuple", "type", "zip", "BaseException",
            "Exception",
        )
    }
)  # fmt: skip

MAGIC = b"AGS1"
_HEADER = struct.Struct(">4sQQ")

#: Caps on what one frame may hold (checked on both sides).
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_PAYLOAD_BYTES = 512 * 1024 * 1024
MAX_ARRAYS = 10_000
MAX_NODES = 200_000
MAX_DEPTH = 64
MAX_STRING = 1024 * 1024
_ARRAY_KINDS = "biufcUS"  # bool, integers, float, complex, text, bytes

_OUTPUT_CAP = 64 * 1024


class ProtocolError(ValueError):
    """A frame or a value does not follow the protocol."""


class UnsupportedValue(TypeError):
    """A value that is not plain data (arrays, numbers, strings, containers)."""


# --- framing ------------------------------------------------------------------


def write_frame(stream, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header, allow_nan=False).encode("utf-8")
    stream.write(_HEADER.pack(MAGIC, len(data), len(payload)) + data + payload)
    stream.flush()


def read_exactly(stream, n: int) -> bytes:
    chunks, remaining = [], n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def parse_lengths(
    prefix: bytes, max_payload: int = MAX_PAYLOAD_BYTES
) -> tuple[int, int]:
    magic, header_len, payload_len = _HEADER.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("bad frame magic")
    if header_len > MAX_HEADER_BYTES or payload_len > max_payload:
        raise ProtocolError(
            f"frame too large (header {header_len} bytes, payload {payload_len} bytes)"
        )
    return header_len, payload_len


def parse_header(data: bytes) -> dict:
    try:
        header = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    return header


def read_frame(stream) -> tuple[dict, bytes]:
    header_len, payload_len = parse_lengths(read_exactly(stream, _HEADER.size))
    header = parse_header(read_exactly(stream, header_len))
    return header, read_exactly(stream, payload_len)


# --- values -------------------------------------------------------------------


class Encoder:
    """Turn a value into a JSON tree plus arrays for the ``.npz`` payload."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._nodes = 0

    def encode(self, value, depth: int = 0):  # noqa: C901 - one branch per kind
        self._nodes += 1
        if depth > MAX_DEPTH or self._nodes > MAX_NODES:
            raise UnsupportedValue("the value is nested too deeply or is too large")
        if value is None:
            return {"t": "none"}
        if isinstance(value, (bool, np.bool_)) and not isinstance(value, np.ndarray):
            if isinstance(value, np.bool_):
                return {"t": "npscalar", "k": self._array(np.asarray(value))}
            return {"t": "bool", "v": bool(value)}
        if isinstance(value, np.generic):
            return {"t": "npscalar", "k": self._array(np.asarray(value))}
        if isinstance(value, int):
            return {"t": "int", "v": str(int(value))}
        if isinstance(value, float):
            return {"t": "float", "v": float(value).hex()}
        if isinstance(value, complex):
            value = complex(value)
            return {"t": "complex", "re": value.real.hex(), "im": value.imag.hex()}
        if isinstance(value, str):
            text = str(value)
            if len(text) > MAX_STRING:
                raise UnsupportedValue("a string longer than 1 MiB")
            return {"t": "str", "v": text}
        if isinstance(value, np.ndarray):
            return {"t": "array", "k": self._array(value)}
        if isinstance(value, tuple):
            return {"t": "tuple", "v": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return {"t": "list", "v": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict):
            items = [
                [self.encode(k, depth + 1), self.encode(v, depth + 1)]
                for k, v in list(value.items())
            ]
            return {"t": "dict", "v": items}
        raise UnsupportedValue(
            f"a {type(value).__name__} object, which is not plain data (arrays, "
            "numbers, strings, and tuples, lists or dicts of them)"
        )

    def _array(self, value) -> str:
        array = np.array(value, copy=True, subok=False)
        if array.dtype.kind not in _ARRAY_KINDS:
            raise UnsupportedValue(f"an array of dtype {array.dtype}")
        if len(self.arrays) >= MAX_ARRAYS:
            raise UnsupportedValue("too many arrays")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def payload(self) -> bytes:
        if not self.arrays:
            return b""
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        return buffer.getvalue()


def encode(value) -> tuple[object, bytes]:
    """Encode one value; return ``(tree, payload)``."""
    encoder = Encoder()
    tree = encoder.encode(value)
    return tree, encoder.payload()


def open_payload(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict:
    """Read the arrays of a payload; refuse anything but plain numeric arrays."""
    if not payload:
        return {}
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ProtocolError(f"payload is not an npz archive: {exc}") from None
    if len(infos) > MAX_ARRAYS:
        raise ProtocolError("too many arrays in the payload")
    if sum(info.file_size for info in infos) > max_bytes:
        raise ProtocolError("payload arrays are too large")
    arrays = {}
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(
            ".npy"
        ):
            raise ProtocolError(f"unexpected payload member {info.filename!r}")
        try:
            with archive.open(info) as member:
                array = np.lib.format.read_array(member, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ProtocolError(f"bad array {info.filename!r}: {exc}") from None
        if type(array) is not np.ndarray or array.dtype.kind not in _ARRAY_KINDS:
            raise ProtocolError(f"array {info.filename!r} is not plain data")
        if array.dtype.fields is not None or array.dtype.hasobject:
            raise ProtocolError(f"array {info.filename!r} has a structured dtype")
        arrays[info.filename[: -len(".npy")]] = array
    return arrays


def decode(tree, arrays: dict, *, _depth: int = 0, _count=None):  # noqa: C901
    """Rebuild a value from :func:`encode`'s tree; strict about every node."""
    count = _count if _count is not None else [0]
    count[0] += 1
    if _depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise ProtocolError("value nested too deeply or too large")
    if not isinstance(tree, dict) or not isinstance(tree.get("t"), str):
        raise ProtocolError("malformed value")
    kind = tree["t"]
    if kind == "none":
        return None
    if kind == "bool":
        return _typed(tree.get("v"), bool)
    if kind == "int":
        text = _typed(tree.get("v"), str)
        if len(text) > 4000:
            raise ProtocolError("integer too large")
        try:
            return int(text)
        except ValueError:
            raise ProtocolError("malformed integer") from None
    if kind == "float":
        return _float(tree.get("v"))
    if kind == "complex":
        return complex(_float(tree.get("re")), _float(tree.get("im")))
    if kind == "str":
        text = _typed(tree.get("v"), str)
        if len(text) > MAX_STRING:
            raise ProtocolError("string too long")
        return text
    if kind in ("array", "npscalar"):
        key = _typed(tree.get("k"), str)
        if key not in arrays:
            raise ProtocolError(f"missing array {key!r}")
        array = arrays[key].copy()
        if kind == "npscalar":
            if array.shape != ():
                raise ProtocolError("numpy scalar with a shape")
            return array[()]
        return array
    if kind in ("tuple", "list"):
        items = [
            decode(v, arrays, _depth=_depth + 1, _count=count)
            for v in _typed(tree.get("v"), list)
        ]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        result = {}
        for pair in _typed(tree.get("v"), list):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ProtocolError("malformed dict item")
            key = decode(pair[0], arrays, _depth=_depth + 1, _count=count)
            if isinstance(key, (list, dict, np.ndarray)):
                raise ProtocolError("unhashable dict key")
            result[key] = decode(pair[1], arrays, _depth=_depth + 1, _count=count)
        return result
    raise ProtocolError(f"unknown value kind {kind!r}")


def _typed(value, kind):
    if type(value) is not kind:
        raise ProtocolError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _float(value) -> float:
    text = _typed(value, str)
    if len(text) > 64:
        raise ProtocolError("malformed float")
    try:
        return float.fromhex(text)
    except ValueError:
        raise ProtocolError("malformed float") from None


# --- the runner ---------------------------------------------------------------


class CellTimeout(BaseException):
    """A cell or a call ran longer than its time limit (like a kernel interrupt)."""


class OutputLimit(BaseException):
    """The student's code printed more than the output limit."""


def _on_alarm(signum, frame):
    raise CellTimeout("time limit exceeded")


def _time_limit(seconds) -> None:
    """Arm (seconds > 0) or disarm (0) the per-cell alarm."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(float(seconds or 0), 0.0))


class _CappedOutput(io.TextIOBase):
    """A text stream that keeps the first few KiB written to it.

    Past ``limit`` characters every write raises :class:`OutputLimit`, as the
    grader interrupts a kernel that floods its output.
    """

    def __init__(self, cap: int = _OUTPUT_CAP, limit: int = 1024 * 1024):
        self._parts: list[str] = []
        self._size = 0
        self._cap = cap
        self.limit = limit

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        if self._size < self._cap:
            self._parts.append(text[: self._cap - self._size])
        self._size += len(text)
        if self._size > self.limit:
            raise OutputLimit(f"more than {self.limit} characters of output")
        return len(text)

    def take(self) -> str:
        text = "".join(self._parts)
        if self._size > self._cap:
            text += f"\n[... {self._size - self._cap} more characters]"
        self._parts, self._size = [], 0
        return text


class _Shell:
    """Enough of ``get_ipython()`` for notebook code outside a kernel."""

    def __init__(self, namespace: dict):
        self.user_ns = namespace

    def run_line_magic(self, *args, **kwargs):
        return None

    def run_cell_magic(self, name, line, cell):
        exec(compile(cell, "<cell magic>", "exec"), self.user_ns)  # noqa: S102

    def system(self, *args, **kwargs):
        return None

    getoutput = system

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _transform(source: str) -> str:
    """Turn IPython syntax (magics, ``!``) into plain Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        lines = [
            "pass" if line.lstrip().startswith(("%", "!")) else line
            for line in source.splitlines()
        ]
        return "\n".join(lines)
    return TransformerManager().transform_cell(source)


_DEFINITIONS = ("Import", "ImportFrom", "FunctionDef", "AsyncFunctionDef", "ClassDef")


def _definitions_only(source: str) -> str:
    """Keep the ``import``/``def``/``class`` statements of a cell."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    body = [node for node in tree.body if type(node).__name__ in _DEFINITIONS]
    return ast.unparse(ast.Module(body, [])) if body else ""


def _describe(exc: BaseException) -> dict:
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - a hostile __str__
        message = "<unprintable>"
    try:
        trace = "".join(traceback.format_exception(exc))[-4000:]
    except Exception:  # noqa: BLE001
        trace = ""
    return {
        "type": type(exc).__name__,
        "message": message[:4000],
        "traceback": trace,
        "not_implemented": isinstance(exc, NotImplementedError),
    }


def _raised_in(exc: BaseException, function) -> bool:
    """Whether ``exc`` was raised by ``function``'s own body (not a callee)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is getattr(function, "__code__", 0)


def _names_used(function) -> list[str]:
    """Global names a function's code (nested code included) refers to."""
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    names, stack = set(), [code]
    while stack and len(names) < 1000:
        code = stack.pop()
        names.update(n for n in code.co_names if isinstance(n, str))
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return sorted(names)[:1000]


class Runner:
    def __init__(self, proto_in, proto_out):
        self.proto_in = proto_in
        self.proto_out = proto_out
        self.pid = os.getpid()
        self.output = _CappedOutput()
        self.namespace: dict = {}

    def guard(self) -> None:
        """A process forked by student code must never speak on the channel."""
        if os.getpid() != self.pid:
            os._exit(0)

    def load(self, header: dict) -> dict:
        namespace = {"__name__": "__main__", "__builtins__": builtins}
        namespace["get_ipython"] = lambda: _Shell(namespace)
        self.namespace = namespace
        self.output.limit = int(header.get("output_limit", self.output.limit))
        cells = []
        for cell in header.get("cells", []):
            label = str(cell.get("label", "cell"))
            error = None
            try:
                source = _transform(str(cell.get("source", "")))
                if cell.get("only") == "definitions":
                    source = _definitions_only(source)
                code = compile(source, label, "exec")
                _time_limit(header.get("cell_timeout"))
                exec(code, namespace)  # noqa: S102 - the student's code, sandboxed
            except BaseException as exc:  # noqa: BLE001 - SystemExit included
                self.guard()
                error = _describe(exc)
            finally:
                _time_limit(0)
            self.guard()
            self.output.take()
            cells.append({"label": label, "error": error})
        defined = sorted(
            name
            for name, value in list(namespace.items())
            if isinstance(name, str)
            and not name.startswith("__")
            and name != "get_ipython"
            and callable(value)
            and not isinstance(value, type(os))
        )
        uses = {name: _names_used(namespace[name]) for name in defined}
        return {"ok": True, "cells": cells, "defined": defined, "uses": uses}

    def call(self, header: dict, payload: bytes) -> tuple[dict, bytes]:
        arrays = open_payload(payload)
        name = str(header["function"])
        args = decode(header["args"], arrays)
        kwargs = decode(header["kwargs"], arrays)
        reference: dict = {"__name__": "reference"}
        exec(str(header.get("reference", "")), reference)  # noqa: S102 - ours
        missing = object()
        patch = {n: reference[n] for n in header.get("patch", []) if n in reference}
        saved = {n: self.namespace.get(n, missing) for n in patch}
        function = self.namespace.get(name)
        if function is None:
            return {
                "ok": False,
                "error": _describe(NameError(f"{name} is not defined")),
            }, b""
        self.namespace.update(patch)
        try:
            _time_limit(header.get("timeout"))
            result = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - any failure is the student's
            _time_limit(0)
            self.guard()
            error = _describe(exc)
            error["raised_inside"] = _raised_in(exc, function)
            return {"ok": False, "error": error}, b""
        finally:
            _time_limit(0)
            self.guard()
            for key, value in saved.items():
                if value is missing:
                    self.namespace.pop(key, None)
                else:
                    self.namespace[key] = value
        encoder = Encoder()
        try:
            reply = {
                "ok": True,
                "result": encoder.encode(result),
                "args": encoder.encode(list(args)),
                "kwargs": encoder.encode(dict(kwargs)),
            }
            data = encoder.payload()
        except BaseException as exc:  # noqa: BLE001 - a hostile object
            self.guard()
            error = _describe(exc)
            error["type"] = "UnsupportedOutput"
            return {"ok": False, "error": error}, b""
        self.guard()
        return reply, data

    def serve(self) -> None:
        while True:
            try:
                header, payload = read_frame(self.proto_in)
            except EOFError:
                return
            op = header.get("op")
            if op == "exit":
                return
            sys.stdout = sys.stderr = self.output
            try:
                if op == "load":
                    reply, data = self.load(header), b""
                elif op == "call":
                    reply, data = self.call(header, payload)
                else:
                    reply, data = {"ok": False, "error": {"type": "ProtocolError"}}, b""
            finally:
                self.guard()
                sys.stdout = sys.stderr = self.output
            reply["output"] = self.output.take()
            write_frame(self.proto_out, reply, data)


def main() -> None:
    # Keep the channel on private descriptors; fd 0 and 1 become /dev/null so
    # that nothing the student's code writes can interleave with replies.
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    # As in a kernel: the working folder, then $PYTHONPATH (read explicitly,
    # since -I ignores it): the stand-ins and the grader's own dlcourse.
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[0:0] = [os.getcwd(), *extra]
    Runner(proto_in, proto_out).serve()
    os._exit(0)


if __name__ == "__main__":
    main()
