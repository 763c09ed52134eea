"""Conformance tests driven by the reference CSIP-AUS client test procedures (CACTUS).

The procedures come from the ``cactus-test-definitions`` package (a test-only dependency);
what each action, event and check means is implemented here, against the in-repo IEEE
2030.5 server and a simulated site in lock-step on a fake clock.
"""
