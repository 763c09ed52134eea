"""Plain-Python control core: controls, merging, the controller and the control cycle.

Nothing in this package imports Home Assistant, so it can be tested, benchmarked and
reused (by the simulator and the benchmark) without it.
"""
