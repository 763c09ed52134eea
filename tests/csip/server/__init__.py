"""An in-repo IEEE 2030.5 / CSIP-AUS test server, independent of the client's ``csip`` code.

``certs`` makes the PKI, ``state`` holds the resource tree and its control API, ``xml``
writes and reads the documents, ``app`` serves them over mutual TLS, and ``fixtures``
offers ``csip_pki``, ``csip_device`` and ``csip_server`` to tests.
"""
