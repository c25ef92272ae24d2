"""The operator's tools beside the service: replay, inspect and report."""
