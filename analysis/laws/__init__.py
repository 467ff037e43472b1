"""The laws layer: every scaling law behind one registry (``registry.LAWS``), each fitted with its
intervals and returning one fitted-law record (``fitted.FittedLaw``). It imports only ``data``."""
