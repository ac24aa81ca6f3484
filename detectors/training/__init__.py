"""Training on synthetic anomalies: the shared loop, its early stopping and its losses."""
