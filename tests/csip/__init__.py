"""Tests of the CSIP-AUS client."""
