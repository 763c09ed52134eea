"""Tests for the Powerwall 2 gateway client and site meter."""
