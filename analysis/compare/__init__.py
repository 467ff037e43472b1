"""The compare layer: statistics (tests, Holm, seeds needed), rankings, effects, learning-rate
sensitivity, scaling and Pareto analyses, verdicts. It imports ``laws`` and ``data``, never ``present``."""
