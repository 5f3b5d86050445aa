"""The exported student as an MLflow pyfunc model, logged as code (no pickle): MLflow runs this file to load the
model, and its predict answers `{"inputs": ["I lost my card"]}` with a label and its probability per text, as
`pgkd predict` does. The student folder travels as the model's artifact "student"."""
from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel
from pydantic import BaseModel


class Prediction(BaseModel):
    label: str
    probability: float


def texts_of(model_input) -> list[str]:
    """A list of texts, or a one-column frame of them (what MLflow makes of a list input with a signature)."""
    if isinstance(model_input, pd.DataFrame):
        return [str(text) for text in model_input.iloc[:, 0]]
    if isinstance(model_input, str):
        return [model_input]
    return [str(text) for text in model_input]


class DistilledStudent(PythonModel):
    def load_context(self, context) -> None:
        from pgkd.student.registry import load_student

        self.student = load_student(context.artifacts["student"])

    def predict(self, model_input: list[str], params=None) -> list[Prediction]:
        """The type hints are the model's signature: MLflow checks inputs against them and infers no other."""
        rows = self.student.predict(texts_of(model_input))
        return [Prediction(label=label, probability=float(prob)) for label, prob in rows]


mlflow.models.set_model(DistilledStudent())
