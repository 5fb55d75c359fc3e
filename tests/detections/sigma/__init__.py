"""Tests of detections.sigma."""
