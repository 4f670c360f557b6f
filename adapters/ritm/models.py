"""Registry entries of this model family (filled in by its adapter)."""
