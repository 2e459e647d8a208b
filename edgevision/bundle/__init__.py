"""Deployable bundles: a run's chosen model with its metadata (``model.json``), labels, a
torch-free Python runner and a C++ runner, as a folder and a ``.tar.gz``
(``edgevision bundle``; docs/deploy.md)."""

from edgevision.bundle.make import BundleResult, make_bundle
from edgevision.bundle.schema import BUNDLE_SCHEMA, TARGETS, BundleMetadata, json_schema
from edgevision.bundle.source import BundleError

__all__ = ["BUNDLE_SCHEMA", "TARGETS", "BundleError", "BundleMetadata", "BundleResult",
           "json_schema", "make_bundle"]
