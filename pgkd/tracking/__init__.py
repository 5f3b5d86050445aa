"""Experiment tracking: the run's params, curves, report and best student, sent where ML teams already look
(MLflow). Only the driver talks to the tracking server; a server that goes away never stops a run."""
