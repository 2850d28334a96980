"""Backbone families; importing this package registers every model."""

from bench.models import efficientformer, mobilevit, qsd, sdt, sdt_v2  # noqa: F401
