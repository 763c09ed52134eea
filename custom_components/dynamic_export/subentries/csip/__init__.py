"""The CSIP-AUS limiter subentry: a utility's dynamic operating envelopes over IEEE 2030.5."""
