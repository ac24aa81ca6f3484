"""What a model or dataset is worth: the realism report, anomaly contrast and dataset summaries."""
