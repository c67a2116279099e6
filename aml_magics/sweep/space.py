"""Parameter expressions with HyperDrive's names, and how a sweep's search space is read.

``choice``, ``randint``, ``uniform``, ``quniform``, ``loguniform``, ``qloguniform``, ``normal``,
``qnormal``, ``lognormal``, ``qlognormal`` mean what they mean in Azure ML's HyperDrive: for
example ``loguniform(a, b)`` is ``exp(uniform(a, b))`` and ``quniform(a, b, q)`` is
``round(uniform(a, b) / q) * q``.

Each expression maps to one Optuna distribution (the *internal* value Optuna samples) and back to
the value the trial sees; ``internal()`` inverts that so a resumed sweep can rebuild Optuna's
history from the parameters stored with each trial. Optuna itself is imported only by the
controller, never by ``%load_ext``.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable

from ..core.errors import InvalidInput
from ..core.specs import format_args, replace_declarations, trial_code  # noqa: F401  (the sweep's template rules)

_EPS = 1e-9


@dataclass(frozen=True)
class Expression:
    kind: str
    args: tuple

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(map(repr, self.args))})"

    # -- Optuna ----------------------------------------------------------------------------------

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        k, a = self.kind, self.args
        if k == "choice":
            return CategoricalDistribution(list(range(len(a))))  # indices: options may be any literal
        if k == "randint":
            return IntDistribution(0, a[0] - 1)
        if k in ("uniform", "quniform"):
            return FloatDistribution(a[0], a[1])
        if k in ("loguniform", "qloguniform"):
            return FloatDistribution(math.exp(a[0]), math.exp(a[1]), log=True)
        # normal family: Optuna samples the quantile u in (0, 1); the value is the inverse CDF
        return FloatDistribution(_EPS, 1 - _EPS)

    def value(self, internal: Any) -> Any:
        """The value a trial sees for Optuna's sampled ``internal`` value."""
        k, a = self.kind, self.args
        if k == "choice":
            return a[int(internal)]
        if k == "randint":
            return int(internal)
        if k == "uniform" or k == "loguniform":
            return float(internal)
        if k in ("quniform", "qloguniform"):
            return _quantize(internal, a[2])
        x = NormalDist(a[0], a[1]).inv_cdf(internal)
        if k == "normal":
            return x
        if k == "qnormal":
            return _quantize(x, a[2])
        if k == "lognormal":
            return math.exp(x)
        return _quantize(math.exp(x), a[2])  # qlognormal

    def internal(self, value: Any) -> Any:
        """Inverse of ``value`` (clipped into the distribution), to replay stored trials into Optuna."""
        k, a = self.kind, self.args
        if k == "choice":
            for i, option in enumerate(a):
                if option == value or str(option) == str(value):
                    return i
            raise ValueError(f"{value!r} is not one of {a!r}")
        v = float(value)
        if k == "randint":
            return min(max(int(v), 0), a[0] - 1)
        if k in ("uniform", "quniform"):
            return min(max(v, a[0]), a[1])
        if k in ("loguniform", "qloguniform"):
            return min(max(v, math.exp(a[0])), math.exp(a[1]))
        if k in ("lognormal", "qlognormal"):
            v = math.log(max(v, 1e-300))
        return min(max(NormalDist(a[0], a[1]).cdf(v), _EPS), 1 - _EPS)

    def grid(self) -> list[Any]:
        if self.kind != "choice":
            raise InvalidInput(f"grid sampling takes only choice(...) parameters; {self} is not one "
                               "(use --sampling random or bayesian)")
        return list(self.args)


def _quantize(x: float, q: float) -> float:
    v = round(x / q) * q
    return int(v) if float(q).is_integer() and float(v).is_integer() else round(v, 12)


def _finite(kind: str, values: tuple) -> None:
    """No infinity or NaN (``1e400`` is a literal of infinity): a trial could not pass it on as JSON, and a range
    with one has no middle to sample."""
    for x in values:
        if isinstance(x, float) and not math.isfinite(x):
            raise InvalidInput(f"{kind}() got {x!r}, which is not a finite number; give numbers below 1.8e308")


def _as_stored(options: tuple) -> tuple:
    """choice()'s options as the sweep's spec stores them and its trials get them — through JSON (numpy numbers
    become numbers, tuples and sets lists). An option JSON cannot carry (bytes, a complex number) or text with a lone
    surrogate is one clear error: the first was a TypeError from inside at submission."""
    from ..core.checks import PLAIN_VALUES, shown, through_json

    return tuple(through_json(f"choice() option {shown(option)}", option, holder="a trial", give=PLAIN_VALUES,
                              allow_nan=False) for option in options)


def _check(kind: str, args: tuple) -> Expression:
    def numbers(n: int, what: str):
        if len(args) != n or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in args):
            raise InvalidInput(f"{kind}() takes {what}, got {kind}{args!r}")
        _finite(kind, args)

    if kind == "choice":
        options = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple, range)) else args
        if len(options) > MAX_CHOICES:  # choice(range(10**9)) made a billion-item tuple before saying anything
            raise InvalidInput(f"choice() of {len(options):,} options is more than {MAX_CHOICES:,}; for a range of "
                               "whole numbers this large use quniform(low, high, 1) (or randint(upper))")
        options = tuple(options)
        if not options:
            raise InvalidInput("choice() needs at least one option, like choice(0.01, 0.1, 1)")
        _finite(kind, options)
        return Expression(kind, _as_stored(options))
    if kind == "randint":
        numbers(1, "one integer upper bound (values 0 … upper-1)")
        if int(args[0]) != args[0] or args[0] < 1:
            raise InvalidInput(f"randint(upper) needs a positive integer, got {args[0]!r}")
        return Expression(kind, (int(args[0]),))
    if kind in ("uniform", "loguniform"):
        numbers(2, "(low, high)")
    elif kind in ("quniform", "qloguniform"):
        numbers(3, "(low, high, q)")
    elif kind in ("normal", "lognormal"):
        numbers(2, "(mu, sigma)")
    elif kind in ("qnormal", "qlognormal"):
        numbers(3, "(mu, sigma, q)")
    else:  # pragma: no cover - guarded by EXPRESSIONS
        raise InvalidInput(f"unknown parameter expression {kind}")
    if kind in ("uniform", "loguniform", "quniform", "qloguniform") and not args[0] < args[1]:
        raise InvalidInput(f"{kind}(low, high, …) needs low < high, got {kind}{args!r}")
    if kind in ("normal", "lognormal", "qnormal", "qlognormal") and not args[1] > 0:
        raise InvalidInput(f"{kind}(mu, sigma, …) needs sigma > 0")
    if len(args) == 3 and not args[2] > 0:
        raise InvalidInput(f"{kind}(…, q) needs q > 0")
    _representable(kind, args)
    return Expression(kind, tuple(args))


MAX_EXP = 709.0  # math.exp overflows above ~709.78
MIN_EXP = -700.0  # below, exp() is 0 or a subnormal: no log scale to sample on
TAIL = 6.2  # the sampled quantiles stop at 1e-9 and 1 - 1e-9: the inverse normal CDF there is ±6.0 sigma


def _representable(kind: str, args: tuple) -> None:
    """That every value the expression can give is a finite float a trial can take: ``loguniform(-1, 1000)`` made
    the sweep fail with OverflowError from math.exp, ``quniform(0, 1, 1e-320)`` with one from round(), and
    ``normal(1e308, 1e308)`` gave trials ±inf."""
    call = f"{kind}{args!r}"
    if kind in ("loguniform", "qloguniform") and not (MIN_EXP <= args[0] and args[1] <= MAX_EXP):
        raise InvalidInput(f"{call}: low and high are natural logs (the values are exp(low) … exp(high)); give them "
                           f"from {MIN_EXP:g} to {MAX_EXP:g}, like loguniform(-6, -1) for 0.0025 … 0.37")
    if kind in ("lognormal", "qlognormal") and abs(args[0]) + TAIL * args[1] > MAX_EXP:
        raise InvalidInput(f"{call}: the values are exp(normal(mu, sigma)), and exp() of mu ± {TAIL:g} sigma is "
                           f"beyond a float; give |mu| + {TAIL:g}·sigma of at most {MAX_EXP:g}")
    if kind in ("uniform", "quniform"):
        span, largest = args[1] - args[0], max(abs(args[0]), abs(args[1]))
    elif kind in ("normal", "qnormal"):
        span = largest = abs(args[0]) + TAIL * args[1]
    else:
        span, largest = 0.0, math.exp(args[1]) if kind == "qloguniform" else 0.0
        if kind == "qlognormal":
            largest = math.exp(abs(args[0]) + TAIL * args[1])
    if not math.isfinite(span) or not math.isfinite(largest):
        raise InvalidInput(f"{call}: its range is beyond a float (about ±1.8e308); give a smaller range")
    if len(args) == 3 and not math.isfinite(largest / args[2]):
        raise InvalidInput(f"{call}: q is too small for the range (values / q overflow); give a larger q")


MAX_CHOICES = 100_000

EXPRESSIONS = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform",
               "normal", "qnormal", "lognormal", "qlognormal")


def _make(kind: str):
    def expression(*args):
        return _check(kind, args)

    expression.__name__ = kind
    expression.__doc__ = f"HyperDrive's {kind}(): a sweep parameter expression."
    return expression


choice, randint, uniform, quniform, loguniform, qloguniform, normal, qnormal, lognormal, qlognormal = (
    _make(k) for k in EXPRESSIONS
)


def _literal_call(node: ast.AST, where: str) -> Expression | None:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in EXPRESSIONS):
        return None
    if node.keywords:
        raise InvalidInput(f"{where}: write {node.func.id}() with positional values only")
    try:
        args = (_range(node.args[0]),) if node.func.id == "choice" and len(node.args) == 1 and _is_range(node.args[0]) \
            else tuple(ast.literal_eval(a) for a in node.args)
    except ValueError:
        also = " or one range(…) of whole numbers" if node.func.id == "choice" else ""
        raise InvalidInput(f"{where}: the values of {node.func.id}() must be literals (numbers, strings, lists)"
                           f"{also}") from None
    return _check(node.func.id, args)


def _is_range(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"


def _range(node: ast.Call) -> range:
    """``choice(range(1, 5))`` of literal whole numbers, as Azure ML's own documentation writes it (it was refused
    here: "must be literals")."""
    if node.keywords or not 1 <= len(node.args) <= 3:
        raise ValueError("range() takes one to three whole numbers")
    bounds = [ast.literal_eval(a) for a in node.args]
    if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
        raise ValueError("range() takes whole numbers")
    return range(*bounds)  # a step of 0 is a ValueError too


def parse_param(text: str) -> tuple[str, Expression]:
    """``"C=choice(0.01, 0.1, 1)"`` → ("C", Expression)."""
    name, sep, expr = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise InvalidInput(f"--param {text!r}: write it as NAME=EXPRESSION, like C=choice(0.1,1,10)")
    try:
        node = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError:
        raise InvalidInput(f"--param {text!r}: {expr.strip()!r} is not an expression") from None
    except UnicodeEncodeError:  # (Python's parser takes UTF-8)
        raise InvalidInput(f"--param {name}: the expression has a lone surrogate character; fix the text") from None
    found = _literal_call(node, f"--param {name}")
    if found is None:
        raise InvalidInput(f"--param {text!r}: use one of {', '.join(EXPRESSIONS)}")
    return name, found


def parse_cell(code: str) -> tuple[dict[str, Expression], list[tuple[str, int, int]]]:
    """The search space a cell declares (top-level ``NAME = choice(...)`` lines) and where they are.

    Returns ``(space, spans)``; each span is ``(name, first_line, last_line)`` (1-based) so the
    controller can put each trial's value in that place.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise InvalidInput(f"the cell has a syntax error on line {exc.lineno}: {exc.msg}") from None
    except UnicodeEncodeError:
        raise InvalidInput("the cell has a lone surrogate character, which Python cannot read; fix the text") from None
    space: dict[str, Expression] = {}
    spans: list[tuple[str, int, int]] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            found = _literal_call(node.value, f"line {node.lineno}")
            if found is not None:
                if name in space:
                    raise InvalidInput(f"line {node.lineno}: parameter {name} is declared twice")
                space[name] = found
                spans.append((name, node.lineno, node.end_lineno or node.lineno))
    return space, spans


def unread(code: str, names) -> list[str]:
    """The declared parameters the cell never reads (a sweep of one runs every trial alike): no ``NAME`` is loaded
    anywhere in it. A cell that reads one another way (``globals()["C"]``) is rare enough to be told, not refused."""
    read = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [name for name in names if name not in read]


def grid_size(space: dict[str, Expression]) -> int:
    n = 1
    for e in space.values():
        n *= len(e.grid())
    return n


def space_to_json(space: dict[str, Expression]) -> dict[str, list]:
    return {k: [e.kind, list(e.args)] for k, e in space.items()}


def space_from_json(data: dict[str, list]) -> dict[str, Expression]:
    return {k: Expression(kind, tuple(args)) for k, (kind, args) in data.items()}
