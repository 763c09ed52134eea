"""The Home Assistant side of each kind of subentry a site holds: devices, limiters, CSIP-AUS.

Each kind has a folder with its flow (the forms that add and reconfigure it), its set-up (the
clients the control loop drives, wired to Home Assistant) and its entities.
"""
