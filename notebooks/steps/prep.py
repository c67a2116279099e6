"""Step prep of an aml-magics pipeline (exported from a notebook cell)."""
import argparse as _argparse
import types as _types

_p = _argparse.ArgumentParser()
_p.add_argument('--clean', required=True)
_a, _ = _p.parse_known_args()
inputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in []})
outputs = _types.SimpleNamespace(**{k: getattr(_a, k) for k in ['clean']})
# --- the cell ---
import os
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
np.savez(os.path.join(outputs.clean, "digits.npz"), X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test)
print("train", X_train.shape, "test", X_test.shape)
