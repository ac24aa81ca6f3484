"""Evaluation on real defects: the metrics and the fit/score/report harness."""
