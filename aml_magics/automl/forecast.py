"""Forecasting as regression on lag features (the direct strategy).

For a horizon H, each row gets the target's values H, H+1, … H+L-1 periods earlier and their
mean: all of them are known for every period up to H ahead of the last observed value, so one
model forecasts the whole horizon. The time column itself becomes calendar features and a trend
index. Validation is time-ordered (the last part of the history), never shuffled.
"""
from __future__ import annotations

N_LAGS = 6


def plan(frame, time_column: str, label: str, horizon: int) -> dict:
    return {"time_column": time_column, "label": label, "horizon": int(horizon),
            "lags": list(range(horizon, horizon + N_LAGS)), "history": None}


def add_lag_features(frame, cfg: dict, history=None):
    """Lag features for ``frame`` (sorted by time); ``history`` supplies earlier target values
    when ``frame`` holds future periods without the target."""
    import pandas as pd

    tcol, label = cfg["time_column"], cfg["label"]
    f = frame.copy()
    f[tcol] = pd.to_datetime(f[tcol], errors="coerce")
    has_target = label in f.columns
    n_new = len(f)
    if not has_target and history is not None:
        past = history.copy()
        f = pd.concat([past, f], ignore_index=True)
    f = f.sort_values(tcol, kind="stable").reset_index(drop=True)
    y = f[label] if label in f.columns else pd.Series([float("nan")] * len(f))
    for lag in cfg["lags"]:
        f[f"{label}_lag{lag}"] = y.shift(lag)
    f[f"{label}_lag_mean"] = f[[f"{label}_lag{lag}" for lag in cfg["lags"]]].mean(axis=1)
    f["_trend"] = (f[tcol] - pd.Timestamp("1970-01-01")).dt.days.astype(float)
    if not has_target and history is not None:
        f = f.iloc[len(f) - n_new:].reset_index(drop=True)
    return f.drop(columns=[label], errors="ignore")


def keep_history(frame, cfg: dict):
    """The last periods the model needs to forecast after the training data."""
    tcol, label = cfg["time_column"], cfg["label"]
    need = max(cfg["lags"]) + 1
    return frame[[tcol, label]].sort_values(tcol).tail(need).reset_index(drop=True)
