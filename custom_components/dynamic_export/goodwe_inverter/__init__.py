"""GoodWe ET-family (hybrid) inverters through the ``goodwe`` library, over UDP port 8899.

The library (the one Home Assistant's own GoodWe integration uses) speaks the inverter's
Modbus-over-UDP protocol; this package adds what the control loop needs on top of it: the
export limit as the site's control, written only on a real change because the inverter keeps
it in non-volatile memory, and the installer's setting handed back. Named ``goodwe_inverter``
so it never shadows the library; it must not import Home Assistant.
"""
