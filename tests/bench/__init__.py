"""Tests of the benchmark's metric functions."""
