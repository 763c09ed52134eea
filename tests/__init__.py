"""Tests of the Dynamic Export integration."""
