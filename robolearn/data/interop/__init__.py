"""Bringing the field's datasets in and out of robolearn (importers and exporters of other layouts)."""
