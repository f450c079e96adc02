"""The MLflow model: the whole scorer (model input in, calibrated churn probability out), logged as code.

MLflow's LightGBM flavour would hand the booster pandas categoricals it cannot check against the signature ("Can not
safely convert category"); this wrapper takes plain strings and floats, owns the category levels and the
calibration, and builds the categoricals itself. Logged by path ("models from code"), so nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from models.artifact import MLFLOW_ARTIFACT, ChurnModel, load_model


class ChurnScorer(PythonModel):
    """Loads the project's model folder (model.txt + metadata.json) logged as an artifact."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model: ChurnModel = load_model(Path(context.artifacts[MLFLOW_ARTIFACT]))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        return self.model.predict(model_input)


# MLflow runs this file to load the model ("models from code"); the project never imports it.
mlflow.models.set_model(ChurnScorer())
