"""SunSpec Modbus TCP client: discovery, register codec, inverter control and meter reading.

Plain asyncio + pymodbus; this package must not import Home Assistant so it can be tested and
reused on its own.
"""
