"""The present layer: charts (one ``charts.CHARTS`` table), HTML tables, the report and the
dashboard launcher. It renders what ``compare``, ``laws`` and ``data`` compute, and computes nothing."""
