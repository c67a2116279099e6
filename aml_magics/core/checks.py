"""Checks of the values users hand us: one place per rule, one clear ``InvalidInput`` each.

Stdlib only (run processes call these on every ``run.log``). Every check names what it checked and
what to give instead; nothing is stored before a check has passed, so a refused call changes nothing.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Any

from .errors import InvalidInput, InvalidType, NotFound

INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1
FLOAT_MAX = sys.float_info.max
MAX_NAME = 255
MAX_KEY = 250  # a metric's name, a param's or a tag's key: MLflow's MAX_ENTITY_KEY_LENGTH (a longer one is refused)
MAX_TIMEOUT_S = 10_000_000  # a run's time limit, about 115 days (past it a timer overflows; no run needs more)


def shown(value: Any, limit: int = 60) -> str:
    """A value as it may appear in an error message: repr, shortened, lone surrogates made visible."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300-digit limit for writing one as text
        text = f"<{type(value).__name__} of over 4,300 digits>"
    except Exception as exc:  # noqa: BLE001 - an object whose __repr__ raises: the message about it must not
        text = f"<{type(value).__name__} object, whose repr raised {type(exc).__name__}>"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def misspelt(what: str, call: Any, given: Any) -> None:
    """Refuse a keyword a call took into its ``**kwargs`` when it is a misspelling of one the call reads
    (``tag=`` for ``tags=``): taken as one of the others it would silently not happen."""
    import difflib
    import inspect

    takes = [name for name, p in inspect.signature(call).parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name not in ("self", "cls")
             and not name.startswith("_")]
    for name in given:
        close = difflib.get_close_matches(name, takes, n=1, cutoff=0.85)
        if close:
            raise InvalidInput(f"{what} has no setting {shown(name, 60)}; did you mean {close[0]!r}?")


def text(what: str, value: Any, *, max_len: int | None = None, empty: bool = False) -> str:
    """Text that SQLite, JSON and the browser can carry: a str, UTF-8 encodable (no lone surrogate), no NUL."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text, got {type(value).__name__} {shown(value)}")
    if not empty and not value.strip():
        raise InvalidInput(f"{what} is empty; give a name")
    if "\x00" in value:
        raise InvalidInput(f"{what} {shown(value)} contains a NUL character; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} {shown(value)} contains a lone surrogate character, which cannot be stored "
                           "as UTF-8; fix the string (it often comes from decoding bytes with errors='surrogateescape')"
                           ) from None
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(f"{what} {shown(value)} is {len(value)} characters long; use at most {max_len}")
    return value


def expand_home(path: Any) -> "Path":
    """``Path(path)`` with a leading ``~`` or ``~user`` expanded as a shell does: ``~nosuchuser/x`` stays as written
    (and is then not found, in one line) — pathlib's ``expanduser`` raised RuntimeError, a traceback."""
    from pathlib import Path

    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError:  # "Could not determine home directory."
        return p


def path_kind(what: str, path: Any) -> str:
    """What is at a local path: "file", "folder", "missing" or "other" (a device, a pipe); a name the system cannot
    look up (an embedded NUL, over its length limits, a parent it may not enter) is one clear error, not an OSError."""
    import stat

    if not isinstance(path, (str, bytes, os.PathLike)):  # (os.stat takes an int as an open file's number)
        raise InvalidInput(f"{what} must be a path, got {type(path).__name__} {shown(path)}")
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, ELOOP, an embedded NUL
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidInput(f"{what} {shown(str(path))} cannot be looked up ({reason}); check the path") from None
    return "folder" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def folder(what: str, path: Any) -> None:
    """A folder that must exist (a file there, or nothing, is one clear error)."""
    kind = path_kind(what, path)
    if kind != "folder":
        reason = "does not exist" if kind == "missing" else \
            f"is a {'file' if kind == 'file' else 'device or a pipe'}, not a folder"
        raise InvalidInput(f"{what} {shown(str(path))} {reason}; give an existing folder")


def existing_file(what: str, path: Any, give: str = "the file") -> None:
    """A file that must exist: nothing there is ``NotFound``; a folder or a device is one clear error."""
    kind = path_kind(what, path)
    if kind == "missing":
        raise NotFound(f"{what} {shown(str(path))} not found")
    if kind != "file":
        raise InvalidInput(f"{what} {shown(str(path))} is a {'folder' if kind == 'folder' else 'device or a pipe'}; "
                           f"give {give}")


def unmatchable(value: Any) -> InvalidInput | None:
    """For a value to look up that no stored name can equal — a lone surrogate (every write refuses one) — the one
    clear error to raise instead of the encoder's error from the database or the HTTP client; else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return InvalidInput(f"the name {shown(value)} contains a lone surrogate character, which no name in the "
                                "workspace can have; fix the string (it often comes from decoding bytes with "
                                "errors='surrogateescape')")
    return None


def artifact_name(name: Any) -> str:
    """A file name under a run (``outputs/model.pkl``): text, a relative path that stays inside the run (no leading
    ``/`` or ``~``, no ``..``, no drive), each part a name a file system takes (at most 255 bytes), naming a file
    rather than a folder (``outputs/`` or ``outputs/.``). Checked before any backend sees it, so a script tried
    outside a run (the offline run) refuses what a workspace would."""
    value = text("artifact name", name if not isinstance(name, os.PathLike) else os.fspath(name), max_len=4096)
    return _inside_a_run(value)


def artifact_to_read(name: Any) -> str:
    """The name of a run's file to read: as ``artifact_name``, except that a name the run's own code made may hold
    bytes that are not UTF-8 (Python names them with lone surrogates): such a file is listed, so it can be read."""
    value = name if not isinstance(name, os.PathLike) else os.fspath(name)
    if not isinstance(value, str):
        raise InvalidInput(f"artifact name must be text, got {type(value).__name__} {shown(value)}")
    if "\x00" in value:
        raise InvalidInput(f"artifact name {shown(value)} contains a NUL character; remove it")
    if len(value) > 4096:
        raise InvalidInput(f"artifact name {shown(value)} is {len(value)} characters long; use at most 4096")
    try:
        os.fsencode(value)
    except UnicodeEncodeError:  # ('\ud800': not one of the surrogates that stand for a byte of a listed name)
        raise InvalidInput(f"artifact name {shown(value)} contains a lone surrogate that no file's name has; "
                           "copy the name from run.get_file_names()") from None
    return _inside_a_run(value)


def _inside_a_run(value: str) -> str:
    posix = value.replace("\\", "/")
    first = posix.split("/", 1)[0]
    if posix.startswith(("/", "~")) or ".." in posix.split("/") or ":" in first:
        raise InvalidInput(f"artifact name {shown(value)} must be a relative path inside the run (like "
                           "'outputs/model.pkl')")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    long = next((p for p in parts if len(p.encode("utf-8", "surrogatepass")) > 255), None)
    if long is not None:
        raise InvalidInput(f"artifact name {shown(value)}: its part {shown(long, 30)} is "
                           f"{len(long.encode('utf-8', 'surrogatepass'))} bytes long; a file name holds at most 255")
    if not parts or value.rstrip().endswith(("/", "\\", "/.")) or parts in (["outputs"], ["logs"]):
        raise InvalidInput(f"artifact name {shown(value)} names a folder; give a file's name, like "
                           "'outputs/model.pkl'")
    return value


def metric_name(name: Any) -> str:
    return text("metric name", name, max_len=MAX_KEY)


MAX_PARAM_VALUE = 6000  # characters: MLflow's limits, which a tracking server that follows them enforces
MAX_TAG_VALUE = 8000  # (tags, and the tags and properties of models)
# the engines' own bookkeeping (a pipeline step's inputs and outputs, read back to resume it): a step's literal
# inputs can be long, and these tags stay in the local workspace (on Azure ML the service runs pipelines)
ENGINE_TAGS = ("pipeline.", "automl.", "sweep.", "batch.")


def tags(what: str, values: Any, *, longer: str = "run.upload_file('outputs/NAME.txt', path)") -> dict[str, str | None]:
    """Tags or params as ``{text: text-or-None}`` (values are stored as their ``str``), each value within MLflow's
    limit: a run that logs a longer one here would fail on Azure ML, and a listing of runs carries every value.
    ``longer``: where the error says longer text goes."""
    if not isinstance(values, dict):
        raise InvalidInput(f"{what} must be a dict of NAME: VALUE, got {type(values).__name__}")
    one = what[:-1] if what.endswith("s") else what
    limit = MAX_PARAM_VALUE if what == "params" else MAX_TAG_VALUE
    out: dict[str, str | None] = {}
    for key, value in values.items():
        key = text(f"{one} name", key if isinstance(key, str) else str(key), max_len=MAX_KEY)
        try:
            written = None if value is None else str(value)
        except ValueError:  # an int past Python's 4,300-digit limit for writing one as text
            raise InvalidInput(f"{one} {shown(key)}: its value is a number too long to write as text; keep at most "
                               f"{limit:,} characters (MLflow's limit)") from None
        except Exception as exc:  # noqa: BLE001 - an object whose __str__ raises: one line that says so
            raise InvalidInput(f"{one} {shown(key)}: its value ({type(value).__name__}) could not be written as text "
                               f"({type(exc).__name__}: {shown(str(exc), 120)}); pass a string") from None
        out[key] = None if written is None else text(f"value of {key}", written, empty=True)
        if out[key] is not None and len(out[key]) > limit and not key.startswith(ENGINE_TAGS):
            raise InvalidInput(f"{one} {shown(key)}: its value is {len(out[key]):,} characters long; keep at most "
                               f"{limit:,} (MLflow's limit), and keep longer text as a file: {longer}")
    return out


def tag_filter(items: list[str]) -> dict[str, str | None]:
    """``["team=vision", "reviewed"]`` (``--tag``, ``?tag=``) → ``{"team": "vision", "reviewed": None}``: a bare key
    asks for runs with that tag set to anything."""
    out: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key.strip():
            raise InvalidInput(f"--tag {item!r}: write it as KEY=VALUE, or KEY for runs with that tag at all")
        if key.strip() in out and out[key.strip()] != (value if sep else None):  # the last one won, without a word
            raise InvalidInput(f"--tag {shown(key.strip(), 40)[1:-1]} is given twice with different values; a tag "
                               "has one value: keep one")
        out[key.strip()] = value if sep else None
    return out


def step(metric: str, value: Any) -> int:
    """A metric step: a whole number in SQLite's int64 range (an integral float such as ``3.0`` is accepted)."""
    if isinstance(value, (bool, str, bytes)):
        raise InvalidInput(f"metric {shown(metric)}: step {shown(value)} is not a number; give a whole number "
                           "such as 3")
    if not isinstance(value, int):
        try:
            index = value.__index__()  # numpy integers
        except (AttributeError, TypeError):
            try:
                f = float(value)
            except (TypeError, ValueError, OverflowError):
                raise InvalidInput(f"metric {shown(metric)}: step {shown(value)} is not a number; give a whole "
                                   "number such as 3") from None
            if not math.isfinite(f) or f != int(f):
                raise InvalidInput(f"metric {shown(metric)}: step {shown(value)} is not a whole number; give an int "
                                   "such as 3 (or leave step out: it counts up by itself)") from None
            index = int(f)
        value = index
    if not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(f"metric {shown(metric)}: step {shown(value)} is outside the 64-bit range; use a step "
                           "between -2**63 and 2**63-1")
    return value


def metric_value(metric: str, value: Any) -> float | int:
    """A scalar metric value: a number that fits a 64-bit float (NaN and infinities are kept as they are)."""
    if isinstance(value, bool):
        return int(value)
    if type(value) is int:
        if -FLOAT_MAX <= value <= FLOAT_MAX:
            return value
    else:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidType(f"metric {shown(metric)}: {type(value).__name__} is not a number; use log_list, "
                              "log_row, log_table or a string") from None
        except OverflowError:
            pass
    raise InvalidInput(f"metric {shown(metric)}: {shown(value, 40)} is too large to store as a number (beyond "
                       f"±{FLOAT_MAX:.3g}); log it as a string, or scale it")


def digits(value: Any) -> int | None:
    """The number a text of ASCII digits writes (a version in ``NAME:VERSION``, a count), else None. ``str.isdigit``
    also takes ``"²"`` and ``"٣"``, which ``int()`` refuses or reads, and ``int()`` refuses over 4,300 digits: each
    was a ValueError traceback where a check was meant."""
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def name_and_version(what: str, ref: str) -> tuple[str, int | None]:
    """``NAME:VERSION`` → (NAME, VERSION); ``NAME`` → (NAME, None): the latest. A version that is not a whole number
    is one InvalidInput: before, an environment's ``NAME:²`` raised ValueError and ``NAME:2x`` meant the latest."""
    name, _, version = str(ref).partition(":")
    if not version:
        return name, None
    number = digits(version)
    if number is None or not 1 <= number <= 2 ** 62:
        raise InvalidInput(f"the version of {what} {shown(name, 80)} must be a whole number from 1, like {name}:2; "
                           f"got {shown(version, 40)}")
    return name, number


def whole(what: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """A whole-number option within bounds (``--limit``, ``--max-concurrent``, a route's offset...): an int, or text
    of ASCII digits with an optional sign (``int()`` also reads ``"٣"`` as 3, and refuses over 4,300 digits: a
    number that long is out of range, not "not an integer")."""
    import numbers

    number: int | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, numbers.Integral):  # (NumPy's integers too)
        number = int(value)
    else:
        try:
            text = str(value).strip()  # "5", or Decimal("5") as before
        except Exception:  # noqa: BLE001 - a value whose str raises is not a number either
            text = ""
        body = text[1:] if text[:1] in ("+", "-") else text
        if body.isascii() and body.isdigit():
            number = int(text) if len(body) <= 30 else (-1 if text[0] == "-" else 1) * 10 ** 30
    if number is None:
        raise InvalidInput(f"{what} must be an integer (a whole number), got {shown(value)}")
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = (f"between {low} and {high}" if low is not None and high is not None
                  else f"at least {low}" if low is not None else f"at most {high}")
        raise InvalidInput(f"{what} must be {bounds}, got {shown(number if abs(number) < 10 ** 30 else value, 30)}")
    return number


def positive(what: str, value: Any, maximum: float | None = None) -> float:
    """A duration or size given as a number: finite and above zero (a string like "1", a bool or NaN is refused
    rather than read as something else), and at most ``maximum`` when one is given."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{what}={shown(value)}: give a number above 0")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{what}={shown(value)}: give at most {maximum:,.15g}")
    return float(value)


MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a date type shows


def timestamp(what: str, value: Any) -> float:
    """A moment as ``time.time()`` gives it: seconds since 1970, a finite number no later than the year 9999 (a
    datetime, a string or a bool is refused rather than stored as something the listing cannot sort or show)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not 0 <= value <= MAX_TIMESTAMP:
        raise InvalidInput(f"{what}={shown(value, 40)}: give seconds since 1970 as time.time() does (a datetime: "
                           "its .timestamp())")
    return float(value)


def output_file_name(what: str, value: Any, suffixes: tuple[str, ...] = (".txt", ".csv", ".parquet")) -> str:
    """The name of the file batch scoring appends its results to: a file name in the run's outputs (no folder, no
    ``..`` — ``../../x.csv`` was written outside the run), ending in one of ``suffixes``."""
    name = text(what, value, max_len=255)
    if "/" in name or "\\" in name or name.startswith(".") or name != name.strip():
        raise InvalidInput(f"{what} {shown(name)}: a file name, without folders (like predictions.csv)")
    if not name.lower().endswith(suffixes):
        raise InvalidInput(f"{what} {shown(name)}: end it in {', '.join(suffixes[:-1])} or {suffixes[-1]}"
                           + (" (.txt: append_row lines)" if ".txt" in suffixes else ""))
    return name


def loopback_host(host: Any) -> bool:
    """Where a local service listens: an IP address or ``localhost``; True when only this machine can reach it
    (any loopback address: 127.0.0.0/8, ::1)."""
    import ipaddress

    value = text("--host", host, max_len=255)
    if value == "localhost":
        return True
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput(f"--host {value!r}: give an IP address to listen on — 127.0.0.1 (this machine only, the "
                           "default) or 0.0.0.0 (every network)") from None
    return address.is_loopback


def entry_inside(what: str, entry: Any) -> str:
    """A script or notebook named relative to the folder the run takes a snapshot of, and inside it: the run has only
    the snapshot (``../x.py`` failed in the run; an absolute path ran that file of this machine, outside the
    snapshot)."""
    import os

    text_ = text(what, entry)
    norm = os.path.normpath(text_)
    if os.path.isabs(text_) or norm.split(os.sep, 1)[0] == "..":
        raise InvalidInput(f"{what} {text_!r} must be a file inside the run's source folder, named relative to it "
                           "(the run has only that folder's snapshot)")
    return text_


def parameter_names(what: str, values: Any) -> None:
    """A notebook's parameters: papermill writes each as ``NAME = VALUE`` into the notebook, so a name must be one
    Python can assign — else the run fails in a SyntaxError, or (a name holding code) runs that code."""
    import keyword

    if not isinstance(values, dict):
        raise InvalidInput(f"{what} must be a dict of NAME: VALUE, got {type(values).__name__}")
    for name in values:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise InvalidInput(f"{what}: {shown(name)} is not a name a notebook can assign; use letters, digits and _ "
                               "(not starting with a digit, not a keyword like class)")


def through_json(label: str, value: Any, *, holder: str, give: str, allow_nan: bool = True) -> Any:
    """``value`` as it comes back from JSON — numpy numbers and arrays become numbers and lists, tuples and sets
    lists — which is how a run, a trial or a notebook gets it. A value JSON cannot carry (bytes, a complex number,
    ``...``, a tuple as a dict key, NaN when not ``allow_nan``) or ``holder`` cannot hold (a lone surrogate), or one
    nested past Python's recursion limit, is one clear error naming ``label`` and saying what to ``give``."""
    import json

    from .plain import plain_value

    try:
        text = json.dumps(value, default=plain_value, allow_nan=allow_nan, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{label} has a lone surrogate character, which {holder} cannot hold; fix the "
                           "string") from None
    except RecursionError:
        raise InvalidInput(f"{label} is nested too deep; give something flatter (or a file's path)") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{label} cannot be passed to {holder}: {exc}; give {give}") from None
    return json.loads(text)


PLAIN_VALUES = "a number, a string, True, False, None, or a list or dict of them"


def notebook_parameters(what: str, values: Any) -> dict:
    """The parameters as the run gets them — through JSON (``through_json``) — each name one a notebook can assign.
    A value JSON cannot carry (bytes, a complex number, ``...``, a tuple as a dict key) or a notebook cannot hold
    (a lone surrogate) is one clear error: the first failed the submission with a TypeError from inside, the second
    the run."""
    parameter_names(what, values)
    return {name: through_json(f"{what}: {name}", value, holder="the notebook", give=PLAIN_VALUES)
            for name, value in values.items()}


def environment_variables(what: str, values: Any) -> dict[str, str]:
    """Variables a run is started with: names a shell takes (``MY_FLAG``), values as text without NUL."""
    import re

    if values is None:
        return {}
    if not isinstance(values, dict):
        raise InvalidInput(f"{what} must be a dict of NAME: VALUE, got {type(values).__name__}")
    out = {}
    for name, value in values.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidInput(f"{what}: {shown(name)} is not a variable name (letters, digits and _, not first a "
                               "digit)")
        if value is None:
            raise InvalidInput(f"{what}: {name} has no value; give text (or leave it out)")
        out[name] = text(f"{what} {name}", str(value), empty=True)
    return out


def yaml_error(exc: BaseException) -> str:
    """A YAML parser's error in one line: what is wrong and where ("expected ',' or ']', but got '<stream end>' at
    line 2, column 1"), not PyYAML's five lines with a caret drawing."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = problem or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if mark is not None and getattr(mark, "line", None) is not None:
        what += f" at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(what.split())


MAX_YAML_NODES = 200_000


def yaml_size(doc: Any, what: str, limit: int = MAX_YAML_NODES) -> Any:
    """``doc`` (a parsed YAML document) when it is of a size a person writes: YAML aliases share one list among many
    places, so a few lines (a "billion laughs") can stand for billions of values, which every later walk or
    ``str()`` of the document would expand — one line then, not a kernel that hangs."""
    seen, stack = 0, [doc]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            raise InvalidInput(f"{what} is too large once its YAML aliases (*name) are expanded; write the values "
                               "out, or use fewer aliases")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return doc


def not_utf8(name: Any, byte: int, where: str = "near the start") -> str:
    return (f"--data {name} is not UTF-8 text (byte 0x{byte:02x} {where}); save it as UTF-8 (Excel: \"CSV UTF-8\"), "
            "or read it with pandas (pd.read_csv(path, encoding='latin-1')) and pass the DataFrame")


def table_delimiter(path: str | os.PathLike, name: Any = None) -> str:
    """How a text table's columns are separated: a tab for .tsv; else a comma, unless the header has none and has
    semicolons, tabs or bars (Excel writes ";" in many languages; a .tsv or .txt was refused at submission, its
    header read as one column). Raises ``InvalidInput`` when the file's start is not UTF-8 text. (AutoML's and batch
    scoring's files both.)"""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not a character the 64 KB cut in two
            raise InvalidInput(not_utf8(name or path, head[exc.start])) from None
        text = head[:exc.start].decode("utf-8-sig")
    if str(path).lower().endswith(".tsv"):
        return "\t"
    header = text.split("\n", 1)[0]
    if "," in header:
        return ","
    counts = {d: header.count(d) for d in (";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
