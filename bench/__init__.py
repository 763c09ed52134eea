"""Control benchmark: the real controller, SunSpec client and simulated site, in lock-step.

``scripts/bench`` (or ``python -m bench``) runs a fixed set of scenarios over Modbus TCP
on 127.0.0.1, measures how well the site keeps its limits and how much it writes, times
the control cycle, and prints one markdown-compatible table.
"""
