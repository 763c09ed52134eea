"""Tests for the OpenDTU client and inverter adapter."""
