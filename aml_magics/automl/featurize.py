"""Featurization, on by default as in Azure ML's AutoML, and reported column by column.

- numeric columns: missing values imputed with the median (plus a ``<col>_missing`` indicator
  when values were missing);
- categorical columns (text, category, bool): one-hot for up to ``MAX_ONEHOT`` categories, else the
  category's frequency; unseen categories at prediction time get zeros / frequency 0;
- datetime columns: year, month, day, day of week, hour;
- dropped: columns that are constant, entirely missing, or ID-like (a distinct value on every row
  of a text or integer column).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ONEHOT = 30


@dataclass
class ColumnPlan:
    column: str
    detected: str
    action: str
    outputs: list[str] = field(default_factory=list)
    fill: Any = None
    categories: list = field(default_factory=list)
    frequencies: dict = field(default_factory=dict)


class Featurizer:
    """Learns a plan from training data (``fit``) and applies it to any data (``transform``)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.plans: list[ColumnPlan] = []
        self.input_columns: list[str] = []
        self.feature_names: list[str] = []

    def fit(self, X) -> "Featurizer":
        import numpy as np
        import pandas as pd

        self.input_columns = [str(c) for c in X.columns]
        n = len(X)
        self.plans = []
        for col in X.columns:
            s = X[col]
            name = str(col)
            if not self.enabled:
                if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                    raise ValueError(f"column {name!r} is not numeric; turn featurization on to encode it")
                self.plans.append(ColumnPlan(name, "numeric", "kept", [name], fill=0.0))
                continue
            non_null = s.dropna()
            unique = non_null.nunique()
            if non_null.empty:
                self.plans.append(ColumnPlan(name, str(s.dtype), "dropped: all values missing"))
                continue
            if unique <= 1:
                self.plans.append(ColumnPlan(name, str(s.dtype), "dropped: constant"))
                continue
            if pd.api.types.is_datetime64_any_dtype(s):
                outs = [f"{name}_{p}" for p in ("year", "month", "day", "dayofweek", "hour")]
                self.plans.append(ColumnPlan(name, "datetime", "expanded to year, month, day, day of week, hour", outs))
                continue
            is_bool = pd.api.types.is_bool_dtype(s)
            if pd.api.types.is_numeric_dtype(s) and not is_bool:
                if pd.api.types.is_integer_dtype(s) and unique == n and n >= 20:
                    self.plans.append(ColumnPlan(name, "numeric (ID-like)", "dropped: a distinct value on every row"))
                    continue
                finite = non_null[np.isfinite(non_null.to_numpy(dtype=float))]  # ±inf counts as missing
                if finite.empty:
                    self.plans.append(ColumnPlan(name, str(s.dtype), "dropped: all values missing or infinite"))
                    continue
                missing = n - len(finite)
                plan = ColumnPlan(name, "numeric", "kept", [name], fill=float(finite.median()))
                if missing:
                    what = "missing or infinite" if len(finite) < len(non_null) else "missing"
                    plan.action = f"{missing} {what} values imputed with the median {plan.fill:.4g}"
                    plan.outputs.append(f"{name}_missing")
                self.plans.append(plan)
                continue
            # categorical
            text = non_null.astype(str)
            if unique == n and n >= 20 and not is_bool:
                self.plans.append(ColumnPlan(name, "text (ID-like)", "dropped: a distinct value on every row"))
                continue
            counts = text.value_counts()
            if unique <= MAX_ONEHOT:
                cats = list(counts.index)
                self.plans.append(ColumnPlan(name, "categorical", f"one-hot encoded ({unique} categories)",
                                             [f"{name}={c}" for c in cats], categories=cats))
            else:
                freqs = (counts / len(s)).to_dict()
                self.plans.append(ColumnPlan(name, "categorical (high cardinality)",
                                             f"frequency encoded ({unique} categories)", [f"{name}_freq"],
                                             frequencies=freqs))
        self.feature_names = [o for p in self.plans for o in p.outputs]
        if not self.feature_names:
            raise ValueError("no usable feature columns are left after featurization (all constant, empty or ID-like)")
        return self

    def transform(self, X):
        import numpy as np
        import pandas as pd

        missing = [c for c in self.input_columns if c not in X.columns]
        if missing:
            raise ValueError(f"the data lacks column(s) the model was trained on: {', '.join(missing)}")
        parts: dict[str, Any] = {}
        for p in self.plans:
            if not p.outputs:
                continue
            s = X[p.column]
            if p.detected == "datetime":
                d = pd.to_datetime(s, errors="coerce")
                for out, attr in zip(p.outputs, ("year", "month", "day", "day_of_week", "hour")):
                    parts[out] = getattr(d.dt, attr).astype(float).fillna(0.0)
            elif p.categories:
                text = s.astype(str).where(s.notna(), None)
                for out, cat in zip(p.outputs, p.categories):
                    parts[out] = (text == str(cat)).astype(float)
            elif p.frequencies:
                parts[p.outputs[0]] = s.astype(str).map(p.frequencies).astype(float).fillna(0.0)
            else:
                values = pd.to_numeric(s, errors="coerce").astype(float).replace([np.inf, -np.inf], np.nan)
                parts[p.outputs[0]] = values.fillna(p.fill if p.fill is not None else 0.0)
                if len(p.outputs) > 1:
                    parts[p.outputs[1]] = values.isna().astype(float)
        out = pd.DataFrame(parts, index=X.index)
        return out[self.feature_names].to_numpy(dtype=np.float64)

    def report(self) -> dict[str, list]:
        return {"column": [p.column for p in self.plans], "detected": [p.detected for p in self.plans],
                "action": [p.action for p in self.plans]}
