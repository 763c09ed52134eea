"""Huawei SUN2000 inverters over Modbus TCP (SDongle, or the inverter's own Wi-Fi port).

Every register is a holding register (FC3 to read, FC16 to write), 32-bit values high word
first. The limit is the inverter's active power derating (a share of its rating), which
Huawei keeps until it is changed, so it is written only on a real change. Plain asyncio on the
shared ``sunspec.connection`` transport; this package must not import Home Assistant.
"""
