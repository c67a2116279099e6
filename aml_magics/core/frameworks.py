"""What framework a model file or folder is, without loading (unpickling runs code)."""
from __future__ import annotations

import pickletools
from pathlib import Path

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")
_SCAN_BYTES = 4_000_000


def _pickle_modules(path: Path) -> set[str]:
    """Top-level module names a pickle refers to, read from its opcodes (nothing is executed)."""
    data = path.read_bytes()[:_SCAN_BYTES]
    modules: set[str] = set()
    start = data.find(b"\x80")  # joblib files may carry a small header before the pickle
    try:
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data[max(start, 0):]):
            if op.name == "GLOBAL" and isinstance(arg, str):
                modules.add(arg.split(" ")[0].split(".")[0])
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE") and isinstance(arg, str):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                modules.add(strings[-2].split(".")[0])
    except Exception:
        pass  # truncated or not a pickle: whatever was read so far
    return modules


def detect_framework(path: Path) -> str | None:
    """``scikit-learn``, ``onnx``, ``mlflow``, ``xgboost``, ``lightgbm``, ``pytorch`` or None."""
    path = Path(path)
    if path.is_dir():
        if (path / "MLmodel").is_file():
            return "mlflow"
        files = [f for f in sorted(path.rglob("*")) if f.is_file()][:20]
        for f in files:
            found = detect_framework(f)
            if found:
                return found
        return None
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt", ".pth"):
        return "pytorch"
    if suffix in PICKLE_SUFFIXES:
        modules = _pickle_modules(path)
        for module, name in (("sklearn", "scikit-learn"), ("xgboost", "xgboost"), ("lightgbm", "lightgbm"),
                             ("torch", "pytorch")):
            if module in modules:
                return name
    return None
