"""Our EndDevice on the server: finding it, registering it in band, the NMI and the PIN.

A device registered out of band (e.g. on a utility portal) is found in the EndDeviceList by
its LFDI; one the server does not know POSTs its EndDevice. A configured PIN is checked
against the server's Registration whenever the EndDevice is read: a mismatch means this may
not be our registration, so nothing the server says is applied until they match.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from .config import CsipConfig
from .connection import Connection, RequestFailedError
from .sep2.discovery import poll_rate
from .sep2.identity import DeviceIdentity, same_lfdi
from .sep2.parse import parse_end_device, parse_end_device_list, parse_registration
from .sep2.resources import EndDevice
from .sep2.serialise import connection_point_xml, end_device_xml
from .status import RegistrationState
from .timetable import Timetable

_LOGGER = logging.getLogger(__name__)


def pin_matches(configured: int, registered: int) -> bool:
    """Whether the installer's PIN is the server's (with or without its check digit)."""
    return configured == registered or (configured < 100000 and configured == registered // 10)


class DeviceRegistration:
    """What the server knows of our EndDevice, kept up to date by :meth:`step`."""

    def __init__(
        self,
        connection: Connection,
        timetable: Timetable,
        identity: DeviceIdentity,
        config: CsipConfig,
        *,
        server_time: Callable[[], int],
        on_forget: Callable[[], None],
    ) -> None:
        """``on_forget`` drops what hangs off an EndDevice that is no longer ours."""
        self._connection = connection
        self._timetable = timetable
        self._lfdi = identity.lfdi
        self._sfdi = identity.sfdi
        self._config = config
        self._server_time = server_time
        self._on_forget = on_forget
        self.end_device: EndDevice | None = None
        self.in_band = False
        """Whether we registered ourselves (saved across restarts)."""
        self.pin_ok: bool | None = None
        """None while no PIN is configured or it cannot be checked."""
        self._found: bool | None = None
        self._cp_sent_for: str | None = None

    @property
    def state(self) -> RegistrationState:
        """What the server knows of our EndDevice."""
        if self._found is None:
            return RegistrationState.UNKNOWN
        if not self._found:
            return RegistrationState.NOT_REGISTERED
        if self.end_device is not None and self.end_device.enabled is False:
            return RegistrationState.DISABLED
        if self.pin_ok is False:
            return RegistrationState.PIN_MISMATCH
        return (
            RegistrationState.REGISTERED_IN_BAND if self.in_band else RegistrationState.REGISTERED
        )

    @property
    def registered(self) -> bool:
        """Whether the server accepts us, so more than discovery may run."""
        return self.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERED_IN_BAND)

    @property
    def end_device_href(self) -> str | None:
        """Where our EndDevice is, once known."""
        return None if self.end_device is None else self.end_device.href

    def forget(self) -> None:
        """The EndDevice we knew is not ours any more (or its list moved)."""
        self.end_device = None
        self._cp_sent_for = None
        self._on_forget()

    async def step(self, now: float, list_href: str | None) -> bool:
        """Find (or register) our EndDevice; False when nothing more may be done."""
        if self.end_device is None or self._timetable.is_due("edev", now):
            await self._poll(now, list_href)
        edev = self.end_device
        if edev is None or edev.enabled is False:
            return False
        await self._check_pin(now, edev)
        return self.pin_ok is not False

    async def _poll(self, now: float, href: str | None) -> None:
        connection, timetable = self._connection, self._timetable
        if href is None:
            connection.record_error("DeviceCapability", "no EndDeviceListLink")
            timetable.retry("edev", now, poll_rate("edev", None))
            return
        try:
            listing = await connection.get_list(
                "EndDeviceList",
                href,
                parse_end_device_list,
                found=lambda d: same_lfdi(d.lfdi, self._lfdi),
            )
        except RequestFailedError as err:
            timetable.retry("edev", now, poll_rate("edev", None), after=err.retry_after)
            return
        rate = poll_rate("edev", listing.poll_rate)
        ours = next((d for d in listing.items if same_lfdi(d.lfdi, self._lfdi)), None)
        if ours is None:
            ours = await self._register(href)
            if ours is None:
                self.forget()
                self._found = False
                timetable.plan("edev", now, rate)
                return
        elif ours.href and (ours.fsa_list_href is None or ours.der_list_href is None):
            with contextlib.suppress(RequestFailedError):
                ours = await connection.get("EndDevice", ours.href, parse_end_device)
        connection.resolved("EndDevice registration")
        if self.end_device is not None and self.end_device.href != ours.href:
            self.forget()
        was_enabled = self.end_device is None or self.end_device.enabled is not False
        self.end_device, self._found = ours, True
        timetable.plan("edev", now, rate)
        if ours.enabled is False:
            if was_enabled:
                _LOGGER.error("The CSIP-AUS server has disabled this device (LFDI %s)", self._lfdi)
            return
        await self._put_connection_point(ours)
        if self._config.pin is not None and ours.registration_href is not None:
            timetable.due_now("rg")  # check the PIN whenever the EndDevice is read

    async def _register(self, href: str) -> EndDevice | None:
        """In-band registration: POST our EndDevice and read it back from Location."""
        connection = self._connection
        body = end_device_xml(
            EndDevice(href=None, lfdi=self._lfdi, sfdi=self._sfdi, changed_time=self._server_time())
        )
        try:
            answer = await connection.post(
                "EndDevice registration", href, body, refused_is_fatal=False
            )
        except RequestFailedError:
            connection.warn_once(
                "not-registered",
                "The CSIP-AUS server does not know this device (LFDI %s, SFDI %s) and refused "
                "to register it: ask the utility to register it",
                self._lfdi,
                self._sfdi,
            )
            return None
        connection.resolved("EndDevice registration")
        self.in_band = True
        _LOGGER.info("Registered with the CSIP-AUS server in band (LFDI %s)", self._lfdi)
        if answer.location:
            with contextlib.suppress(RequestFailedError):
                return await connection.get("EndDevice", answer.location, parse_end_device)
        with contextlib.suppress(RequestFailedError):
            listing = await connection.get_list(
                "EndDeviceList", href, parse_end_device_list, found=lambda d: d.lfdi is not None
            )
            return next((d for d in listing.items if same_lfdi(d.lfdi, self._lfdi)), None)
        return None

    async def _put_connection_point(self, edev: EndDevice) -> None:
        nmi, href = self._config.nmi, edev.connection_point_href
        if not nmi or href is None or self._cp_sent_for == edev.href:
            return
        try:
            await self._connection.put("ConnectionPoint", href, connection_point_xml(nmi))
        except RequestFailedError:
            return
        self._connection.resolved("ConnectionPoint")
        self._cp_sent_for = edev.href
        _LOGGER.info("Sent NMI %s to the CSIP-AUS server", nmi)

    async def _check_pin(self, now: float, edev: EndDevice) -> None:
        pin = self._config.pin
        if pin is None:
            self.pin_ok = None
            return
        href = edev.registration_href
        if href is None:
            self._connection.warn_once(
                "no-registration",
                "The CSIP-AUS server offers no Registration: the PIN cannot be checked",
            )
            self.pin_ok = None
            return
        if self.pin_ok is not None and not self._timetable.is_due("rg", now):
            return
        try:
            registration = await self._connection.get("Registration", href, parse_registration)
        except RequestFailedError as err:
            self._timetable.retry("rg", now, poll_rate("rg", None), after=err.retry_after)
            return
        ok = pin_matches(pin, registration.pin)
        if not ok and self.pin_ok is not False:
            _LOGGER.error(
                "The CSIP-AUS server's registration PIN differs from the configured one: "
                "no control from this server is applied until they match"
            )
        elif ok and self.pin_ok is False:
            _LOGGER.info("The CSIP-AUS registration PIN matches again")
        self.pin_ok = ok
        self._timetable.plan("rg", now, poll_rate("rg", registration.poll_rate))
