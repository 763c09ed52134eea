"""Tests of the IEEE 2030.5 wire level (``csip.sep2``)."""
