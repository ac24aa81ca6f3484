"""The detectors (network, fit, score), one module each; importing this package registers them all.

Add a new detector module to the import line below.
"""

from detectors.models import glass, patchcore, prn, realnet, refine, simplenet  # noqa: F401  (registers the detectors)
