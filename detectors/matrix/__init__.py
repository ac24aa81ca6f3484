"""`detectors matrix`: which anomalies for my part, measured.

Every generator's anomalies over seeds x every detector trained on them, PatchCore as the reference,
each unit a resumable subprocess (`synth gen`, `detectors bench`); then a report a person reads in a
minute. ``engine`` (units, commands, folders), ``inputs`` (the command line, checked), ``runner``
(subprocesses, progress, time left), ``results`` (finished cells, the record, the settings check),
``stats`` (seed means, two-level verdicts), ``report`` (report.md, report.json), ``plots`` (PNGs).
"""

from detectors.matrix.engine import Cell, Matrix, Shards, units
from detectors.matrix.report import write_report
from detectors.matrix.results import check_recorded_settings
from detectors.matrix.runner import run_matrix

__all__ = ["Cell", "Matrix", "Shards", "check_recorded_settings", "run_matrix", "units", "write_report"]
