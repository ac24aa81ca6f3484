"""Anomaly detectors that train on real normal images and synth datasets: PatchCore, SimpleNet, ...

Create one by name (``create_detector``), fit it on a ``TrainingSet``, score images, save/load it.
Importing a detector module registers it; add new detector modules to the import line below.
"""

from detectors.base import DETECTORS, Detector, DetectorConfig, create_detector, load_detector, register
from detectors.data import TrainingSet, training_set

from detectors import glass, patchcore, prn, realnet, simplenet  # noqa: E402,F401  (registers the detectors)

__all__ = ["DETECTORS", "Detector", "DetectorConfig", "TrainingSet", "create_detector", "load_detector",
           "register", "training_set"]
