"""Benchmarks (``make bench``): measured against local stand-ins, never against AWS."""
