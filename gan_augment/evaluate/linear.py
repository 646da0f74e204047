"""The few-label probe's classifier on its own: standardised features, logistic regression, C by
cross-validation on the labelled rows only. scikit-learn alone, so that a caller holding feature
arrays (`curate.selection`'s `margin`) fits it without loading torch; `probe` adds the feature
sources (tensors, `Features`, tables) and the label draws."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

# L2 strengths tried by cross-validation (C is the inverse strength): standardised features of a
# few thousand dimensions against tens of labels usually want strong regularisation.
C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
# With one label per class there is nothing to cross-validate on; scikit-learn's default C.
FIXED_C = 1.0


def fit_with_c(x: np.ndarray, y: np.ndarray, k: int, c_grid: Sequence[float], cv_folds: int, fixed_c: float,
               max_iter: int, seed: int) -> tuple[Pipeline, float]:
    """The probe fitted on (x, y), and its C. With k >= 2 labels per class, C is chosen by
    stratified k-fold cross-validation on these labelled rows only; the scaler is fitted inside
    each fold, then on all of them."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=fixed_c, max_iter=max_iter))
    if k < 2:
        return probe.fit(x, y), fixed_c
    folds = StratifiedKFold(n_splits=min(cv_folds, k), shuffle=True, random_state=seed)
    search = GridSearchCV(probe, {"logisticregression__C": list(c_grid)}, cv=folds, refit=True)
    search.fit(x, y)
    return search.best_estimator_, float(search.best_params_["logisticregression__C"])


def fit_linear(x: np.ndarray, y: np.ndarray, *, c_grid: Sequence[float] = C_GRID, cv_folds: int = 5,
               fixed_c: float = FIXED_C, max_iter: int = 2000, seed: int = 0) -> Pipeline:
    """The probe fitted on all of (x, y), C by cross-validation on them (`fixed_c` where a
    class has one row); scikit-learn's convergence warnings are silenced."""
    _, counts = np.unique(y, return_counts=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_with_c(x, y, int(counts.min()), c_grid, cv_folds, fixed_c, max_iter, seed)[0]
