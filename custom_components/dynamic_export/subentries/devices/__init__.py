"""Inverter and site-meter subentries: SunSpec (TCP or RS-485), OpenDTU, Powerwall, HA entities."""
