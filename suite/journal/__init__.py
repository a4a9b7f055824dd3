"""Experiments of the journal extension of Memory Wrap (beyond the conference paper)."""
