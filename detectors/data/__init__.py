"""What a detector reads: training sets of normal images and synthetic anomalies, and tiles of large images."""
