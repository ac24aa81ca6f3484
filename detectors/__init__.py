"""Anomaly detectors that train on real normal images and synth datasets: PatchCore, SimpleNet, ...

Create one by name (``create_detector``), fit it on a ``TrainingSet``, score images, save/load it.
Importing ``detectors.models`` registers every detector; this package imports it, so any import of
``detectors`` (or one of its modules) fills the registry.
"""

from detectors.base import DETECTORS, Detector, DetectorConfig, create_detector, load_detector, register
from detectors.data.training import TrainingSet, training_set

from detectors import models  # noqa: E402,F401  (registers the detectors)

__all__ = ["DETECTORS", "Detector", "DetectorConfig", "TrainingSet", "create_detector", "load_detector",
           "register", "training_set"]
