"""Backbone families; importing this package registers every model."""

from bench.models import efficientformer, mobile_former, mobilevit, qsd, sdt, sdt_v2, vit  # noqa: F401
