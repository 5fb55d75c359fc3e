"""Detections: Sigma rules, correlations and anomaly models over the event stream; alerts and incidents."""
