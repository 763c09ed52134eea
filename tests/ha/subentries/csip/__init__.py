"""The CSIP-AUS limiter against a local IEEE 2030.5 test server."""
