"""batchrun: a batch job runner for bulk generation through hosted APIs."""
__version__ = "0.7.0"
