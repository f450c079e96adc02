"""Probability calibration, fitted with scikit-learn on held-out customers and saved as plain numbers.

The method (isotonic or sigmoid) is chosen by cross-fitting on the validation customers: each method is fitted on
one half of them and scored (log loss) on the other, so isotonic's flexibility is not rewarded for fitting its own
points. The chosen method is then fitted on all validation customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

Method = Literal["isotonic", "sigmoid"]
METHODS: tuple[Method, ...] = ("isotonic", "sigmoid")
# Keeps logit finite for raw scores of exactly 0 or 1.
_EPS = 1e-9


@dataclass(frozen=True)
class Calibration:
    """Maps the booster's raw probability to a calibrated one. Isotonic: linear interpolation through the
    fitted steps (as IsotonicRegression.predict with out_of_bounds='clip'); sigmoid: expit(a * logit(p) + b).
    `shift` (log-odds, 0 = none) then moves the level, keeping the order: the season level of
    models/season_anchor.py."""

    method: Method
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0
    shift: float = 0.0

    def apply(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            calibrated = np.interp(raw, self.x, self.y)
        else:
            calibrated = np.asarray(expit(self.a * _logit(raw) + self.b))
        if self.shift == 0.0:
            return calibrated
        return np.asarray(expit(_logit(calibrated) + self.shift), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        # Without a shift the dict is the one models had before shifts existed (their metadata stays the same bytes).
        shift = {"shift": self.shift} if self.shift != 0.0 else {}
        if self.method == "isotonic":
            return {"method": self.method, "x": list(self.x), "y": list(self.y), **shift}
        return {"method": self.method, "a": self.a, "b": self.b, **shift}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Calibration:
        if values.get("method") not in METHODS:
            raise ValueError(f"unknown calibration method {values.get('method')!r}; expected one of {METHODS}")
        shift = float(values.get("shift", 0.0))
        if values["method"] == "isotonic":
            return cls("isotonic", x=tuple(values["x"]), y=tuple(values["y"]), shift=shift)
        return cls("sigmoid", a=float(values["a"]), b=float(values["b"]), shift=shift)


def fit_calibration(raw: np.ndarray, labels: np.ndarray, method: Method) -> Calibration:
    if method == "isotonic":
        isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, labels)
        return Calibration(
            "isotonic",
            x=tuple(float(v) for v in isotonic.X_thresholds_),
            y=tuple(float(v) for v in isotonic.y_thresholds_),
        )
    platt = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), labels)
    return Calibration("sigmoid", a=float(platt.coef_[0, 0]), b=float(platt.intercept_[0]))


def choose_calibration(
    raw: np.ndarray, labels: np.ndarray, halves: np.ndarray, choice: Method | Literal["auto"]
) -> tuple[Calibration, dict[str, float]]:
    """The calibration for `choice`, or for "auto" the method with the lower cross-fitted log loss.

    `halves` is a boolean split of the rows by customer. Returns the cross-fitted log loss of each method compared.
    """
    candidates = METHODS if choice == "auto" else (choice,)
    losses = {method: _cross_fitted_log_loss(raw, labels, halves, method) for method in candidates}
    best = min(losses, key=lambda method: losses[method])
    return fit_calibration(raw, labels, best), {str(method): loss for method, loss in losses.items()}


def _cross_fitted_log_loss(raw: np.ndarray, labels: np.ndarray, halves: np.ndarray, method: Method) -> float:
    calibrated = np.empty_like(raw, dtype=np.float64)
    for fit_on in (halves, ~halves):
        calibrated[~fit_on] = fit_calibration(raw[fit_on], labels[fit_on], method).apply(raw[~fit_on])
    return float(log_loss(labels, np.clip(calibrated, _EPS, 1 - _EPS), labels=[0, 1]))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(logit(np.clip(p, _EPS, 1 - _EPS)))
