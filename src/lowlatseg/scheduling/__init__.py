"""Keyframe scheduling: the deviation predictor and the policies that decide keyframes."""
