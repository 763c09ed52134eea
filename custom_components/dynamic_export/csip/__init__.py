"""CSIP-AUS: an IEEE 2030.5 client for Australian dynamic connections.

Plain Python. ``sep2`` is the wire level (XML, resources, identity, TLS, transport) and
imports nothing from the rest. ``client`` composes the parts that talk to the server
(``clock``, ``connection``, ``registration``, ``programs``, ``uploads``) with those that
only decide (``schedule``, ``responses``, ``reporting``, ``telemetry``, ``ramp``).
The Home Assistant layer only configures it and shows its state.
"""
