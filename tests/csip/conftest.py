"""Fixtures of the in-repo IEEE 2030.5 test server, for every CSIP-AUS test."""

from __future__ import annotations

from .server.fixtures import csip_device, csip_pki, csip_server, csip_server_factory

__all__ = ["csip_device", "csip_pki", "csip_server", "csip_server_factory"]
