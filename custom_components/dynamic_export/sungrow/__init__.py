"""Sungrow SG (string) and SH (hybrid) inverters over Modbus TCP.

Output, energy, rating and the device type come from input registers (FC4); the limit is the
inverter's own power limitation (a switch and a ratio in holding registers, FC3/FC16).
Sungrow holds these settings until they are changed, and may keep them in flash, so they are
written only on a real change. Plain asyncio on the shared ``sunspec.connection`` transport;
this package must not import Home Assistant.
"""
