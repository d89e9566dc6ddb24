"""Inference: the Predictor over an exported predictor directory, its checks and export, long
recordings (windows, VAD segments), speech recognition, the hub and the web app."""
