"""Tests for the SunSpec Modbus client."""
