"""Limiters: sources of site limits. Plain Python; the HA layer only configures them."""
