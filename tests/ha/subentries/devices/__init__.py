"""Inverters and site meters of every kind, against their real protocol peers."""
