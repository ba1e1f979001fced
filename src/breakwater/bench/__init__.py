"""Benchmarks that compare Breakwater with a physical limit measured in the same run."""
