"""CSIP-AUS: an IEEE 2030.5 client for Australian dynamic connections.

Plain Python: identity (certificates, LFDI/SFDI), transport (mutual TLS), the
2030.5 resources, the control schedule and telemetry. The Home Assistant layer
only configures it and shows its state.
"""
