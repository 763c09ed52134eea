"""Real-time benchmark: the integration inside a real Home Assistant against the simulated site.

The lock-step bench (``bench/``) runs the controller in simulated time; this one runs Home
Assistant as a subprocess, configured through its real flows, while the simulated site steps on
the wall clock. Figures are scored with the lock-step bench's definitions and set beside the
perfect reactive tracker computed on the same recorded inputs (issue 11).
"""
