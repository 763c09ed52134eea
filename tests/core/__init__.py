"""Unit tests of the plain-Python control core."""
