"""The data layer: results directories read (trials, curves, predictions, run.json), the cells
comparisons are made in, and synthetic runs. It imports nothing else from ``archscale.analysis``."""
