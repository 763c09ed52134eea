"""Limiter subentries: fixed limits, Amber prices, tariff windows, battery charge, MQTT."""
