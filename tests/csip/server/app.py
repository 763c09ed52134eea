"""An IEEE 2030.5 / CSIP-AUS utility server for tests, over real mutual TLS on loopback.

It renders ``CsipState`` as XML, identifies each client by the LFDI of the certificate it
presented in the TLS handshake, stores what clients PUT and POST, logs every request, and
can be told to misbehave (``inject``). It shares no code with the client under test.

URL layout (every path after the optional ``CsipState.prefix``)::

    /dcap                               DeviceCapability
    /tm                                 Time
    /edev                               EndDeviceList (GET, paged; POST EndDevice → 201)
    /edev/{e}                           EndDevice
    /edev/{e}/cp                        csipaus:ConnectionPoint (GET, PUT → 204, POST → 201)
    /edev/{e}/rg                        Registration
    /edev/{e}/der                       DERList → /edev/{e}/der/{d} DER
    /edev/{e}/der/{d}/dercap|derg|ders|dera   PUT → 204 (stored), GET the last one or 404
    /edev/{e}/fsa                       FunctionSetAssignmentsList → /edev/{e}/fsa/{f}
    /derp, /fsa/{f}/derp                DERProgramList of FSA 1 / of later FSAs (paged)
    /derp/{p}                           DERProgram
    /derp/{p}/dderc                     DefaultDERControl
    /derp/{p}/derc                      DERControlList (paged) → /derp/{p}/derc/{mRID}
    /rsps/...                           POST Response / DERControlResponse → 201
    /mup                                MirrorUsagePointList (GET, paged; POST MUP → 201)
    /mup/{n}                            MirrorUsagePoint (GET; POST MirrorMeterReading(List))
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from .certs import Credentials, CsipPKI, lfdi_of, server_ssl_context, sfdi_of
from .state import (
    ActivePower,
    ControlBase,
    CsipState,
    DERControl,
    EndDevice,
    MirrorUsagePoint,
    Program,
    ResponseRecord,
    StoredBody,
    default_tree,
)
from .xml import (
    CSIP_NS,
    SEP_NS,
    SEP_XML,
    Node,
    XmlElement,
    XmlError,
    XmlStyle,
    el,
    leaf,
    parse,
    render,
    validate,
)

FaultKind = Literal[
    "status",
    "delay",
    "malformed",
    "xxe",
    "billion_laughs",
    "wrong_namespace",
    "wrong_content_type",
    "empty",
    "huge",
    "drop",
    "hang",
    "drop_after",
]
WRONG_NAMESPACE = "http://zigbee.org/sep"  # the pre-standard SEP 2.0 namespace


@dataclass(slots=True)
class RequestRecord:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    lfdi: str | None
    content_type: str
    tls_version: str | None
    cipher: str | None
    time: float
    """When it arrived, on the state's clock (a test's fake clock where it has one)."""
    status: int | None = None
    fault: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TlsFailure:
    """A handshake the server refused, e.g. reason ``PEER_DID_NOT_RETURN_A_CERTIFICATE`` or
    ``CERTIFICATE_VERIFY_FAILED`` with ``message`` "certificate has expired"."""

    reason: str | None
    message: str
    time: float


@dataclass(slots=True)
class Fault:
    """A misbehaviour for requests whose path (without prefix) matches ``path`` (a glob).

    ``times``: how many matching requests it applies to (``None``: all); ``hits`` counts them.
    """

    path: str
    kind: FaultKind
    method: str | None = None
    status: int = 500
    delay: float = 0.0
    size: int = 8 * 1024 * 1024
    chunked: bool = False
    body: bytes = b""
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault is still armed for the request."""
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(path, self.path)


@dataclass(slots=True)
class Reply:
    """What a handler answers before faults are applied."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = SEP_XML
    headers: dict[str, str] = field(default_factory=dict)


class Reject(Exception):  # noqa: N818 - it is an HTTP answer, not an error of the server
    """Answer the request with an HTTP error status and a plain-text reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(slots=True)
class Ctx:
    """One request being handled."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str
    lfdi: str | None
    record: RequestRecord


Handler = Callable[..., Reply]

_DER_KINDS = {
    "dercap": "DERCapability",
    "derg": "DERSettings",
    "ders": "DERStatus",
    "dera": "DERAvailability",
}


class CsipTestServer:
    """The server; ``start`` binds 127.0.0.1 (port 0 the first time, then the same port)."""

    def __init__(
        self,
        pki: CsipPKI,
        state: CsipState | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Credentials | None = None,
        require_client_cert: bool = True,
        maximum_tls_version: ssl.TLSVersion | None = None,
        max_body: int = 4 * 1024 * 1024,
    ) -> None:
        self.pki = pki
        self.state = state if state is not None else default_tree()
        self.host = host
        self.port = port
        self.credentials = credentials or pki.server
        self.require_client_cert = require_client_cert
        self.maximum_tls_version = maximum_tls_version
        self.max_body = max_body
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.tls_failures: list[TlsFailure] = []
        self.ssl_context: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous_handler: Callable[..., object] | None = None
        self._trusted: list[bytes] = [pki.serca.pem]
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        """Set to let hanging requests go (``clear_faults``, ``stop``)."""
        self._routes = self._route_table()
        self.on_request: Callable[[RequestRecord, str, bool], None] | None = None
        """Called with (record, local path, served) as each request arrives (``served``
        False, before it is handled: it may change the state the answer is made from) and
        once it was answered (True). A procedure runner listens here."""

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:{port}`` (hrefs are relative to it)."""
        return f"https://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The DeviceCapability URL a client is configured with."""
        return f"{self.base_url}{self.state.href('/dcap')}"

    async def start(self) -> None:
        """Listen (again): the first start picks a free port, later ones reuse it."""
        if self._runner is not None:
            return
        self.ssl_context = server_ssl_context(
            self.credentials,
            self._trusted,
            require_client_cert=self.require_client_cert,
            maximum_version=self.maximum_tls_version,
        )
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
            sock.setblocking(False)
            site = web.SockSite(runner, sock, ssl_context=self.ssl_context)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        self._runner = runner
        # Refused handshakes reach the loop's exception handler (HA's logs them as errors):
        # record them here instead, where tests can assert on them.
        self._loop = asyncio.get_running_loop()
        self._previous_handler = self._loop.get_exception_handler()
        self._loop.set_exception_handler(self._loop_exception)

    async def stop(self) -> None:
        """Close the listener and every connection ("server down")."""
        self._release_hanging()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        loop, self._loop = self._loop, None
        if loop is not None and loop.get_exception_handler() == self._loop_exception:
            loop.set_exception_handler(self._previous_handler)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        error = context.get("exception")
        if isinstance(error, ssl.SSLError | ConnectionError) and "transport creation" in str(
            context.get("message", "")
        ):
            message = getattr(error, "verify_message", None) or str(error)
            self.tls_failures.append(
                TlsFailure(getattr(error, "reason", None), message, time.time())
            )
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def __aenter__(self) -> CsipTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def allow_certificate(self, cert: Credentials | bytes) -> None:
        """Trust a certificate (e.g. a self-signed device's), also while running."""
        pem = cert if isinstance(cert, bytes) else cert.pem
        self._trusted.append(pem)
        if self.ssl_context is not None:
            self.ssl_context.load_verify_locations(cadata=pem.decode())

    # -- faults and the log ----------------------------------------------------------------

    def inject(
        self,
        path: str,
        kind: FaultKind = "status",
        *,
        method: str | None = None,
        status: int = 500,
        delay: float = 0.0,
        size: int = 8 * 1024 * 1024,
        chunked: bool = False,
        body: bytes = b"",
        times: int | None = None,
    ) -> Fault:
        """Make requests matching ``path`` (a glob, without prefix) misbehave.

        Kinds: ``status`` (answer ``status`` with ``body``), ``delay`` (wait ``delay`` s, then
        answer normally; any kind honours ``delay``), ``malformed`` (the real document cut in
        half), ``xxe`` (the real document with a DOCTYPE declaring an external entity, used in
        its first text), ``billion_laughs`` (nested entity expansion), ``wrong_namespace``
        (the real document in the SEP 2.0 namespace), ``wrong_content_type`` (text/html),
        ``empty`` (200 with no body), ``huge`` (``size`` bytes of padded XML, ``chunked`` or
        with a Content-Length), ``drop`` (close the connection without answering),
        ``hang`` (accept the request and never answer: the connection stays open until
        ``clear_faults`` or ``stop``, then closes unanswered), ``drop_after`` (handle the
        request, storing what it carries, then close the connection without answering:
        a write the server took but the client never saw acknowledged).
        The newest matching fault wins.
        """
        fault = Fault(path, kind, method, status, delay, size, chunked, body, times)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault (requests left hanging are closed unanswered)."""
        self.faults.clear()
        self._release_hanging()

    def _release_hanging(self) -> None:
        self._release.set()
        self._release = asyncio.Event()

    def requests_to(self, path: str, method: str | None = None) -> list[RequestRecord]:
        """Logged requests whose path (with prefix) matches the glob ``path``."""
        pattern = path if path.startswith(self.state.prefix) else self.state.href(path)
        return [
            r
            for r in self.requests
            if fnmatch.fnmatchcase(r.path, pattern)
            and (method is None or r.method == method.upper())
        ]

    # -- request handling ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        cipher = ssl_object.cipher() if ssl_object is not None else None
        body = await request.read()
        record = RequestRecord(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            body=body,
            lfdi=lfdi_of(der) if der else None,
            content_type=request.headers.get("Content-Type", ""),
            tls_version=ssl_object.version() if ssl_object is not None else None,
            cipher=cipher[0] if cipher else None,
            time=self.state.clock(),
        )
        self.requests.append(record)
        local = self._local_path(request.path)
        if self.on_request is not None:
            self.on_request(record, local or "", False)
        response = await self._serve(request, record, local, body)
        if self.on_request is not None:
            self.on_request(record, local or "", True)
        return response

    async def _serve(
        self, request: web.Request, record: RequestRecord, local: str | None, body: bytes
    ) -> web.StreamResponse:
        fault = next(
            (f for f in reversed(self.faults) if f.matches(request.method, local or "")), None
        )
        if fault is not None:
            fault.hits += 1
            record.fault = fault.kind
            if fault.delay:
                await asyncio.sleep(fault.delay)
            early = await self._early_fault(fault, request, record)
            if early is not None:
                return early
        ctx = Ctx(
            request.method,
            local or "",
            record.query,
            body,
            record.content_type,
            record.lfdi,
            record,
        )
        try:
            if local is None:
                raise Reject(404, "not under this server's prefix")
            reply = self._dispatch(ctx)
        except Reject as reject:
            reply = Reply(reject.status, reject.reason.encode(), "text/plain")
            record.errors.append(reject.reason)
        if fault is not None and fault.kind == "drop_after":
            record.status = None
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # handled and stored, but never answered
        if fault is not None:
            reply = _transform(fault, reply)
        record.status = reply.status
        response = web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        if reply.content_type is not None and reply.body:
            response.headers["Content-Type"] = reply.content_type
        return response

    def _local_path(self, path: str) -> str | None:
        prefix = self.state.prefix
        if not prefix:
            return path
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
        return None

    async def _early_fault(
        self, fault: Fault, request: web.Request, record: RequestRecord
    ) -> web.StreamResponse | None:
        if fault.kind == "status":
            record.status = fault.status
            return web.Response(status=fault.status, body=fault.body or None)
        if fault.kind == "empty":
            record.status = 200
            return web.Response(status=200)
        if fault.kind == "hang":
            record.status = None
            await self._release.wait()
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if fault.kind == "drop":
            record.status = None
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the handler without answering
        if fault.kind == "huge":
            record.status = 200
            head = f'<?xml version="1.0"?>\n<DeviceCapability xmlns="{SEP_NS}">'.encode()
            tail = b"</DeviceCapability>"
            padding = max(0, fault.size - len(head) - len(tail))
            if not fault.chunked:
                return web.Response(
                    body=head + b" " * padding + tail, headers={"Content-Type": SEP_XML}
                )
            response = web.StreamResponse(headers={"Content-Type": SEP_XML})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(head)
            chunk = b" " * 65536
            while padding > 0:
                await response.write(chunk[:padding])
                padding -= len(chunk)
            await response.write(tail)
            await response.write_eof()
            return response
        return None

    def _dispatch(self, ctx: Ctx) -> Reply:
        for fsa in self.state.fsas.values():
            if ctx.path == fsa.derp_path:
                self._only(ctx, "GET")
                return self._program_list(ctx, fsa.program_ids, fsa.derp_path)
        for pattern, methods in self._routes:
            match = pattern.fullmatch(ctx.path)
            if match is None:
                continue
            handler = methods.get(ctx.method)
            if handler is None:
                raise Reject(405, f"{ctx.method} is not allowed on {ctx.path}")
            return handler(ctx, **match.groupdict())
        raise Reject(404, f"no resource at {ctx.path}")

    @staticmethod
    def _only(ctx: Ctx, method: str) -> None:
        if ctx.method != method:
            raise Reject(405, f"{ctx.method} is not allowed on {ctx.path}")

    def _route_table(self) -> list[tuple[re.Pattern[str], dict[str, Handler]]]:
        edev = r"/edev/(?P<edev>[0-9]+)"
        table: list[tuple[str, dict[str, Handler]]] = [
            ("/dcap", {"GET": self._dcap}),
            ("/tm", {"GET": self._time}),
            ("/edev", {"GET": self._edev_list, "POST": self._edev_post}),
            (edev, {"GET": self._edev}),
            (
                f"{edev}/cp",
                {
                    "GET": self._cp_get,
                    "PUT": self._cp_put,
                    "POST": self._cp_put,
                },
            ),
            (f"{edev}/rg", {"GET": self._registration}),
            (f"{edev}/der", {"GET": self._der_list}),
            (f"{edev}/der/(?P<der>[0-9]+)", {"GET": self._der}),
            (
                f"{edev}/der/(?P<der>[0-9]+)/(?P<kind>dercap|derg|ders|dera)",
                {"GET": self._der_resource_get, "PUT": self._der_resource_put},
            ),
            (f"{edev}/fsa", {"GET": self._fsa_list}),
            (f"{edev}/fsa/(?P<fsa>[^/]+)", {"GET": self._fsa}),
            ("/derp/(?P<program>[^/]+)", {"GET": self._program}),
            ("/derp/(?P<program>[^/]+)/dderc", {"GET": self._default_control}),
            ("/derp/(?P<program>[^/]+)/derc", {"GET": self._control_list}),
            ("/derp/(?P<program>[^/]+)/derc/(?P<mrid>[^/]+)", {"GET": self._control}),
            ("/rsps/.+", {"POST": self._response_post}),
            ("/mup", {"GET": self._mup_list, "POST": self._mup_post}),
            ("/mup/(?P<mup>[0-9]+)", {"GET": self._mup_get, "POST": self._mup_reading_post}),
        ]
        return [(re.compile(p), m) for p, m in table]

    # -- access rules ------------------------------------------------------------------------

    def _discovery(self, ctx: Ctx) -> EndDevice | None:
        if ctx.lfdi is None:
            raise Reject(403, "no client certificate")
        device = self.state.device_for(ctx.lfdi)
        if device is None and not self.state.allow_unregistered_discovery:
            raise Reject(403, f"LFDI {ctx.lfdi} is not registered")
        return device

    def _registered(self, ctx: Ctx) -> EndDevice:
        if ctx.lfdi is None:
            raise Reject(403, "no client certificate")
        device = self.state.device_for(ctx.lfdi)
        if device is None:
            raise Reject(403, f"LFDI {ctx.lfdi} is not registered")
        return device

    def _own(self, ctx: Ctx, edev: str) -> EndDevice:
        caller = self._registered(ctx)
        device = self.state.devices.get(int(edev))
        if device is None:
            raise Reject(404, f"no EndDevice {edev}")
        if device.id != caller.id:
            raise Reject(403, f"EndDevice {edev} belongs to another LFDI")
        return device

    def _read_body(self, ctx: Ctx, roots: set[str]) -> StoredBody:
        if self.state.strict and not ctx.content_type.lower().startswith(SEP_XML):
            raise Reject(415, f"Content-Type must be {SEP_XML}, not {ctx.content_type!r}")
        try:
            doc = parse(ctx.body)
        except XmlError as err:
            raise Reject(400, f"unreadable XML: {err}") from err
        if doc.name not in roots:
            raise Reject(400, f"expected {sorted(roots)}, got {doc.name}")
        if self.state.strict:
            errors = validate(doc, roots)
            if errors:
                ctx.record.errors.extend(errors)
                raise Reject(400, "schema errors: " + "; ".join(errors))
        return StoredBody(ctx.body, doc, ctx.lfdi, ctx.path, self.state.clock())

    # -- rendering helpers -------------------------------------------------------------------

    def _xml(self, node: Node, style: XmlStyle | None = None) -> Reply:
        return Reply(200, render(node, style or self.state.xml_style))

    def _bool(self, value: bool | None) -> str | None:
        if value is None:
            return None
        if self.state.boolean_digits:
            return "1" if value else "0"
        return "true" if value else "false"

    def _page[T](self, ctx: Ctx, items: list[T]) -> list[T]:
        start = _int_query(ctx, "s", 0)
        limit = _int_query(ctx, "l", self.state.default_page_limit)
        if self.state.max_page_limit is not None:
            limit = min(limit, self.state.max_page_limit)
        return items[start : start + limit]

    def _poll(self, key: str) -> int | None:
        return self.state.poll_rates.get(key)

    def _h(self, path: str) -> str:
        return self.state.href(path)

    # -- discovery ---------------------------------------------------------------------------

    def _visible_devices(self, ctx: Ctx) -> list[EndDevice]:
        devices = sorted(self.state.devices.values(), key=lambda d: d.id)
        if self.state.edev_list_shows_all:
            return devices
        return [d for d in devices if d.lfdi == ctx.lfdi]

    def _own_mups(self, ctx: Ctx) -> list[MirrorUsagePoint]:
        return [
            m for m in sorted(self.state.mups.values(), key=lambda m: m.id) if m.lfdi == ctx.lfdi
        ]

    def _dcap(self, ctx: Ctx) -> Reply:
        self._discovery(ctx)
        return self._xml(
            el(
                "DeviceCapability",
                el("TimeLink", href=self._h("/tm")),
                el("EndDeviceListLink", href=self._h("/edev"), all=len(self._visible_devices(ctx))),
                el("MirrorUsagePointListLink", href=self._h("/mup"), all=len(self._own_mups(ctx))),
                href=self._h("/dcap"),
                pollRate=self._poll("dcap"),
            )
        )

    def _time(self, ctx: Ctx) -> Reply:
        self._discovery(ctx)
        state = self.state
        now = state.server_time()
        in_dst = state.dst_start <= now < state.dst_end
        local = now + state.tz_offset + (state.dst_offset if in_dst else 0)
        return self._xml(
            el(
                "Time",
                leaf("currentTime", now),
                leaf("dstEndTime", state.dst_end),
                leaf("dstOffset", state.dst_offset),
                leaf("dstStartTime", state.dst_start),
                leaf("localTime", local),
                leaf("quality", state.time_quality),
                leaf("tzOffset", state.tz_offset),
                href=self._h("/tm"),
                pollRate=self._poll("tm"),
            )
        )

    # -- EndDevices --------------------------------------------------------------------------

    def _edev_node(self, device: EndDevice) -> Node:
        base = f"/edev/{device.id}"
        return el(
            "EndDevice",
            el("DERListLink", href=self._h(f"{base}/der"), all=device.der_count),
            leaf("lFDI", device.lfdi),
            leaf("sFDI", device.sfdi),
            leaf("changedTime", device.changed_time),
            leaf("enabled", self._bool(device.enabled)),
            el(
                "FunctionSetAssignmentsListLink",
                href=self._h(f"{base}/fsa"),
                all=len(self.state.fsas),
            ),
            (
                el("RegistrationLink", href=self._h(f"{base}/rg"))
                if self.state.registration_links
                else None
            ),
            el("ConnectionPointLink", ns=CSIP_NS, href=self._h(f"{base}/cp")),
            href=self._h(base),
        )

    def _edev_list(self, ctx: Ctx) -> Reply:
        self._discovery(ctx)
        devices = self._visible_devices(ctx)
        page = self._page(ctx, devices)
        return self._xml(
            el(
                "EndDeviceList",
                *(self._edev_node(d) for d in page),
                href=self._h("/edev"),
                all=len(devices),
                results=len(page),
                pollRate=self._poll("edev"),
            )
        )

    def _edev_post(self, ctx: Ctx) -> Reply:
        self._discovery(ctx)
        assert ctx.lfdi is not None
        if not self.state.allow_in_band_registration:
            raise Reject(403, "in-band registration is not allowed")
        stored = self._read_body(ctx, {"EndDevice"})
        body_lfdi = stored.value("lFDI")
        raw_sfdi = stored.value("sFDI")
        body_sfdi = raw_sfdi if raw_sfdi is not None and raw_sfdi.isdigit() else None
        if self.state.strict:
            if body_lfdi is not None and body_lfdi.upper() != ctx.lfdi:
                raise Reject(400, f"lFDI {body_lfdi} is not the certificate's {ctx.lfdi}")
            if body_sfdi is not None and int(body_sfdi) != sfdi_of(ctx.lfdi):
                raise Reject(400, f"sFDI {body_sfdi} is not the certificate's {sfdi_of(ctx.lfdi)}")
        device = self.state.device_for(ctx.lfdi)
        if device is None:
            device = self.state.register_device(
                ctx.lfdi,
                sfdi=int(body_sfdi) if body_sfdi else None,
                enabled=self.state.enable_in_band_devices,
                in_band=True,
            )
        device.posted = stored
        return Reply(201, headers={"Location": self._h(f"/edev/{device.id}")})

    def _edev(self, ctx: Ctx, edev: str) -> Reply:
        return self._xml(self._edev_node(self._own(ctx, edev)))

    def _cp_get(self, ctx: Ctx, edev: str) -> Reply:
        device = self._own(ctx, edev)
        if device.nmi is None:
            raise Reject(404, "no ConnectionPoint yet")
        return self._xml(
            el(
                "ConnectionPoint",
                leaf("connectionPointId", device.nmi, ns=CSIP_NS),
                ns=CSIP_NS,
                href=self._h(f"/edev/{device.id}/cp"),
            )
        )

    def _cp_put(self, ctx: Ctx, edev: str) -> Reply:
        device = self._own(ctx, edev)
        stored = self._read_body(ctx, {"ConnectionPoint"})
        if stored.doc.ns != CSIP_NS:
            raise Reject(400, f"ConnectionPoint must be in {CSIP_NS}")
        device.nmi = stored.value("connectionPointId")
        device.connection_point_puts.append(stored)
        if ctx.method == "POST":
            return Reply(201, headers={"Location": self._h(f"/edev/{device.id}/cp")})
        return Reply(204)

    def _registration(self, ctx: Ctx, edev: str) -> Reply:
        device = self._own(ctx, edev)
        return self._xml(
            el(
                "Registration",
                leaf("dateTimeRegistered", device.registered_time),
                leaf("pIN", device.pin),
                href=self._h(f"/edev/{device.id}/rg"),
                pollRate=self._poll("rg"),
            )
        )

    def _der_node(self, device: EndDevice, der: int) -> Node:
        base = f"/edev/{device.id}/der/{der}"
        return el(
            "DER",
            el("DERAvailabilityLink", href=self._h(f"{base}/dera")),
            el("DERCapabilityLink", href=self._h(f"{base}/dercap")),
            el("DERSettingsLink", href=self._h(f"{base}/derg")),
            el("DERStatusLink", href=self._h(f"{base}/ders")),
            href=self._h(base),
        )

    def _der_list(self, ctx: Ctx, edev: str) -> Reply:
        device = self._own(ctx, edev)
        ders = list(range(1, device.der_count + 1))
        page = self._page(ctx, ders)
        return self._xml(
            el(
                "DERList",
                *(self._der_node(device, d) for d in page),
                href=self._h(f"/edev/{device.id}/der"),
                all=len(ders),
                results=len(page),
                pollRate=self._poll("der"),
            )
        )

    def _der_index(self, device: EndDevice, der: str) -> int:
        index = int(der)
        if not 1 <= index <= device.der_count:
            raise Reject(404, f"no DER {der}")
        return index

    def _der(self, ctx: Ctx, edev: str, der: str) -> Reply:
        device = self._own(ctx, edev)
        return self._xml(self._der_node(device, self._der_index(device, der)))

    def _der_resource_get(self, ctx: Ctx, edev: str, der: str, kind: str) -> Reply:
        device = self._own(ctx, edev)
        stored = device.der.get((self._der_index(device, der), kind))
        if stored is None:
            raise Reject(404, f"no {_DER_KINDS[kind]} has been PUT")
        return Reply(200, stored.raw)

    def _der_resource_put(self, ctx: Ctx, edev: str, der: str, kind: str) -> Reply:
        device = self._own(ctx, edev)
        index = self._der_index(device, der)
        stored = self._read_body(ctx, {_DER_KINDS[kind]})
        device.der[(index, kind)] = stored
        device.der_puts.append((index, kind, stored))
        return Reply(204)

    # -- function set assignments and programs -----------------------------------------------

    def _fsa_node(self, device: EndDevice, fsa_id: str) -> Node:
        fsa = self.state.fsas[fsa_id]
        return el(
            "FunctionSetAssignments",
            el("DERProgramListLink", href=self._h(fsa.derp_path), all=len(fsa.program_ids)),
            leaf("mRID", fsa.mrid),
            leaf("description", fsa.description),
            href=self._h(f"/edev/{device.id}/fsa/{fsa.id}"),
        )

    def _fsa_list(self, ctx: Ctx, edev: str) -> Reply:
        device = self._own(ctx, edev)
        fsas = list(self.state.fsas)
        page = self._page(ctx, fsas)
        return self._xml(
            el(
                "FunctionSetAssignmentsList",
                *(self._fsa_node(device, f) for f in page),
                href=self._h(f"/edev/{device.id}/fsa"),
                all=len(fsas),
                results=len(page),
                pollRate=self._poll("fsa"),
            )
        )

    def _fsa(self, ctx: Ctx, edev: str, fsa: str) -> Reply:
        device = self._own(ctx, edev)
        if fsa not in self.state.fsas:
            raise Reject(404, f"no FSA {fsa}")
        return self._xml(self._fsa_node(device, fsa))

    def _get_program(self, ctx: Ctx, program_id: str) -> Program:
        self._registered(ctx)
        program = self.state.programs.get(program_id)
        if program is None:
            raise Reject(404, f"no DERProgram {program_id}")
        return program

    def _program_node(self, program: Program) -> Node:
        base = f"/derp/{program.id}"
        default_link = None
        if program.default is not None or program.default_absent != "no_link":
            default_link = el("DefaultDERControlLink", href=self._h(f"{base}/dderc"))
        return el(
            "DERProgram",
            leaf("mRID", program.mrid),
            leaf("description", program.description),
            default_link,
            el("DERControlListLink", href=self._h(f"{base}/derc"), all=len(program.controls)),
            leaf("primacy", program.primacy),
            href=self._h(base),
        )

    def _program_list(self, ctx: Ctx, program_ids: list[str], path: str) -> Reply:
        self._registered(ctx)
        programs = sorted(
            (self.state.programs[p] for p in program_ids if p in self.state.programs),
            key=lambda p: (p.primacy, p.mrid),
        )
        page = self._page(ctx, programs)
        return self._xml(
            el(
                "DERProgramList",
                *(self._program_node(p) for p in page),
                href=self._h(path),
                all=len(programs),
                results=len(page),
                pollRate=self._poll("derp"),
            )
        )

    def _program(self, ctx: Ctx, program: str) -> Reply:
        return self._xml(self._program_node(self._get_program(ctx, program)))

    def _base_node(self, base: ControlBase) -> Node:
        def power(name: str, value: ActivePower | None) -> Node | None:
            if value is None:
                return None
            return el(
                name, leaf("multiplier", value.multiplier), leaf("value", value.value), ns=CSIP_NS
            )

        return el(
            "DERControlBase",
            leaf("opModConnect", self._bool(base.op_mod_connect)),
            leaf("opModEnergize", self._bool(base.op_mod_energize)),
            leaf("rampTms", base.ramp_tms),
            power("opModImpLimW", base.op_mod_imp_lim_w),
            power("opModExpLimW", base.op_mod_exp_lim_w),
            power("opModGenLimW", base.op_mod_gen_lim_w),
            power("opModLoadLimW", base.op_mod_load_lim_w),
        )

    def _default_control(self, ctx: Ctx, program: str) -> Reply:
        found = self._get_program(ctx, program)
        default = found.default
        if default is None:
            if found.default_absent == "204":
                return Reply(204)
            if found.default_absent == "empty":
                return Reply(200)
            raise Reject(404, f"DERProgram {program} has no DefaultDERControl")
        return self._xml(
            el(
                "DefaultDERControl",
                leaf("mRID", default.mrid),
                leaf("description", default.description),
                self._base_node(default.base),
                leaf("setGradW", default.set_grad_w),
                leaf("setSoftGradW", default.set_soft_grad_w),
                href=self._h(f"/derp/{found.id}/dderc"),
            ),
            self.state.control_xml_style,
        )

    def _control_node(self, control: DERControl) -> Node:
        reply_to = control.reply_to
        if reply_to is not None and reply_to.startswith("/"):
            reply_to = self._h(reply_to)
        return el(
            "DERControl",
            leaf("mRID", control.mrid),
            leaf("description", control.description),
            leaf("creationTime", control.creation_time),
            el(
                "EventStatus",
                leaf("currentStatus", control.current_status),
                leaf("dateTime", control.status_time),
                leaf("potentiallySuperseded", self._bool(control.potentially_superseded)),
            ),
            el("interval", leaf("duration", control.duration), leaf("start", control.start)),
            leaf("randomizeDuration", control.randomize_duration),
            leaf("randomizeStart", control.randomize_start),
            self._base_node(control.base),
            href=self._h(f"/derp/{control.program_id}/derc/{control.mrid}"),
            replyTo=reply_to,
            responseRequired=f"{control.response_required:02X}",
        )

    def _control_list(self, ctx: Ctx, program: str) -> Reply:
        found = self._get_program(ctx, program)
        controls = found.sorted_controls()
        page = self._page(ctx, controls)
        return self._xml(
            el(
                "DERControlList",
                *(self._control_node(c) for c in page),
                href=self._h(f"/derp/{found.id}/derc"),
                all=len(controls),
                results=len(page),
            ),
            self.state.control_xml_style,
        )

    def _control(self, ctx: Ctx, program: str, mrid: str) -> Reply:
        found = self._get_program(ctx, program)
        control = found.controls.get(mrid)
        if control is None:
            raise Reject(404, f"no DERControl {mrid}")
        return self._xml(self._control_node(control), self.state.control_xml_style)

    # -- responses ---------------------------------------------------------------------------

    def _response_post(self, ctx: Ctx) -> Reply:
        self._registered(ctx)
        stored = self._read_body(ctx, {"Response", "DERControlResponse"})
        device_lfdi = stored.value("endDeviceLFDI")
        if self.state.strict and (device_lfdi or "").upper() != ctx.lfdi:
            raise Reject(400, f"endDeviceLFDI {device_lfdi} is not the certificate's {ctx.lfdi}")
        status = stored.value("status")
        created = stored.value("createdDateTime")
        if self.state.strict and stored.doc.name == "DERControlResponse":
            self._check_response(stored.value("subject"), status)
        self.state.responses.append(
            ResponseRecord(
                path=ctx.path,
                lfdi=ctx.lfdi,
                kind=stored.doc.name,
                subject=stored.value("subject"),
                status=int(status) if status is not None else None,
                created=int(created) if created is not None else None,
                end_device_lfdi=device_lfdi,
                body=stored,
            )
        )
        location = self._h(f"{ctx.path}/{len(self.state.responses)}")
        return Reply(201, headers={"Location": location})

    def _check_response(self, subject: str | None, status: str | None) -> None:
        """What the reference server refuses of a DERControlResponse: a status outside
        IEEE 2030.5's ResponseType, or a subject that is none of its DERControls."""
        if status is None or not status.isdigit() or int(status) not in RESPONSE_STATUSES:
            raise Reject(400, f"Response status {status} is not an IEEE 2030.5 ResponseType")
        if (subject or "").upper() not in self.state.control_mrids():
            raise Reject(400, f"Response subject {subject} is not a DERControl of this server")

    # -- mirror usage points -----------------------------------------------------------------

    def _mup_node(self, mup: MirrorUsagePoint) -> Node:
        doc = mup.body.doc
        post_rate = mup.post_rate if mup.post_rate is not None else self.state.post_rate
        return el(
            "MirrorUsagePoint",
            leaf("mRID", mup.mrid),
            leaf("description", doc.value("description")),
            leaf("roleFlags", doc.value("roleFlags")),
            leaf("serviceCategoryKind", doc.value("serviceCategoryKind")),
            leaf("status", doc.value("status")),
            leaf("deviceLFDI", doc.value("deviceLFDI")),
            leaf("postRate", post_rate),
            href=self._h(f"/mup/{mup.id}"),
        )

    def _mup_list(self, ctx: Ctx) -> Reply:
        self._registered(ctx)
        mups = self._own_mups(ctx)
        page = self._page(ctx, mups)
        return self._xml(
            el(
                "MirrorUsagePointList",
                *(self._mup_node(m) for m in page),
                href=self._h("/mup"),
                all=len(mups),
                results=len(page),
                pollRate=self._poll("mup"),
            )
        )

    def _mup_post(self, ctx: Ctx) -> Reply:
        self._registered(ctx)
        stored = self._read_body(ctx, {"MirrorUsagePoint"})
        device_lfdi = stored.value("deviceLFDI") or ""
        if self.state.strict and device_lfdi.upper() != ctx.lfdi:
            raise Reject(400, f"deviceLFDI {device_lfdi} is not the certificate's {ctx.lfdi}")
        mrid = stored.value("mRID") or ""
        self._check_mup(stored.doc, mrid)
        mup = next(
            (m for m in self._own_mups(ctx) if m.mrid.upper() == mrid.upper()),
            None,
        )
        if mup is None:
            mup = MirrorUsagePoint(self.state.next_mup_id(), mrid, ctx.lfdi, stored)
            self.state.mups[mup.id] = mup
        else:
            mup.body = stored
        mup.reading_mrids.update(_reading_mrids(stored.doc))
        mup.reading_types.update(_reading_types(stored.doc))
        return Reply(201, headers={"Location": self._h(f"/mup/{mup.id}")})

    def _check_pen(self, what: str, mrid: str) -> None:
        pen = self.state.pen
        if pen is None:
            return
        tail = mrid[-8:]
        if not (tail.isdigit() and int(tail) == pen):
            raise Reject(
                400, f"{what} mRID {mrid} does not end with the PEN {pen} (8 decimal digits)"
            )

    def _check_mup(self, doc: XmlElement, mrid: str) -> None:
        """What the reference server and runner check of a MirrorUsagePoint."""
        self._check_pen("MirrorUsagePoint", mrid)
        readings = list(doc.iter_named("MirrorMeterReading"))
        for reading in readings:
            self._check_pen("MirrorMeterReading", reading.value("mRID") or "")
        if not (self.state.strict and self.state.check_readings):
            return
        role_flags = int(doc.value("roleFlags") or "0", 16)
        if role_flags not in CSIP_ROLE_FLAGS:
            raise Reject(
                400, f"roleFlags {role_flags:#04x} is neither a site nor a DER usage point"
            )
        for reading in readings:
            rtype = reading.find("ReadingType")
            if rtype is None:
                continue
            problem = _reading_type_problem(rtype)
            if problem:
                raise Reject(400, f"MirrorMeterReading {reading.value('mRID')}: {problem}")

    def _get_mup(self, ctx: Ctx, mup_id: str) -> MirrorUsagePoint:
        self._registered(ctx)
        mup = self.state.mups.get(int(mup_id))
        if mup is None:
            raise Reject(404, f"no MirrorUsagePoint {mup_id}")
        if mup.lfdi != ctx.lfdi:
            raise Reject(403, f"MirrorUsagePoint {mup_id} belongs to another LFDI")
        return mup

    def _mup_get(self, ctx: Ctx, mup: str) -> Reply:
        return self._xml(self._mup_node(self._get_mup(ctx, mup)))

    @staticmethod
    def _check_readings(mup: MirrorUsagePoint, readings: list[XmlElement]) -> None:
        """Each reading was defined (here or in its usage point) and covers whole minutes."""
        for reading in readings:
            mrid = (reading.value("mRID") or "").upper()
            rtype = reading.find("ReadingType")
            if rtype is None and mrid not in mup.reading_types:
                raise Reject(400, f"MirrorMeterReading {mrid} has no ReadingType defined")
            if rtype is not None and (problem := _reading_type_problem(rtype)):
                raise Reject(400, f"MirrorMeterReading {mrid}: {problem}")
            for period in _reading_periods(reading):
                start = int(period.value("start") or "0")
                duration = int(period.value("duration") or "0")
                if start % 60 or duration <= 0 or duration % 60:
                    raise Reject(
                        400,
                        f"MirrorMeterReading {mrid}: period start {start} / duration "
                        f"{duration} s is not whole minutes",
                    )

    def _mup_reading_post(self, ctx: Ctx, mup: str) -> Reply:
        found = self._get_mup(ctx, mup)
        stored = self._read_body(ctx, {"MirrorMeterReading", "MirrorMeterReadingList"})
        mrids = _reading_mrids(stored.doc)
        readings = (
            [stored.doc]
            if stored.doc.name == "MirrorMeterReading"
            else list(stored.doc.iter_named("MirrorMeterReading"))
        )
        for reading in readings:
            self._check_pen("MirrorMeterReading", reading.value("mRID") or "")
        if self.state.strict and self.state.check_readings:
            self._check_readings(found, readings)
        new = not mrids <= found.reading_mrids
        found.reading_mrids.update(mrids)
        found.reading_types.update(_reading_types(stored.doc))
        found.posts.append(stored)
        return Reply(201 if new else 204)


RESPONSE_STATUSES = frozenset({*range(1, 16), 252, 253, 254})
"""IEEE 2030.5 ResponseType: event received (1) to rejected (15), and the rejections 252-254."""
CSIP_ROLE_FLAGS = {0x03, 0x49}
"""Site (isMirror|isPremisesAggregationPoint) and DER (isMirror|isDER|isSubmeter) usage points."""
CSIP_UOMS = {38: "W", 63: "var", 29: "V", 33: "Hz"}
CSIP_QUALIFIERS = {2, 8, 9}
"""Average, maximum, minimum."""
KIND_POWER = 37


def _reading_type_problem(rtype: XmlElement) -> str | None:
    """Why a ReadingType is not one CSIP-AUS telemetry uses (None: it is)."""
    uom = int(rtype.value("uom") or "-1")
    if uom not in CSIP_UOMS:
        return f"uom {uom} is not one CSIP-AUS reports ({sorted(CSIP_UOMS)})"
    kind = rtype.value("kind")
    if kind is None or int(kind) != KIND_POWER:
        return f"kind {kind} is not {KIND_POWER} (power), which CSIP-AUS uses for every reading"
    qualifier = rtype.value("dataQualifier")
    if qualifier is None or int(qualifier) not in CSIP_QUALIFIERS:
        return f"dataQualifier {qualifier} is not average, maximum or minimum"
    return None


def _reading_types(doc: XmlElement) -> dict[str, XmlElement]:
    readings = (
        [doc] if doc.name == "MirrorMeterReading" else list(doc.iter_named("MirrorMeterReading"))
    )
    return {
        (r.value("mRID") or "").upper(): rtype
        for r in readings
        if (rtype := r.find("ReadingType")) is not None
    }


def _reading_mrids(doc: XmlElement) -> set[str]:
    readings = (
        [doc] if doc.name == "MirrorMeterReading" else list(doc.iter_named("MirrorMeterReading"))
    )
    return {(r.value("mRID") or "").upper() for r in readings}


def _reading_periods(reading: XmlElement) -> list[XmlElement]:
    """The timePeriods of a MirrorMeterReading's Reading and ReadingSets."""
    out = [p for r in reading.iter_named("Reading") if (p := r.find("timePeriod")) is not None]
    for reading_set in reading.iter_named("MirrorReadingSet"):
        out.extend(
            p for r in reading_set.iter_named("Reading") if (p := r.find("timePeriod")) is not None
        )
    return out


def _int_query(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Reject(400, f"query parameter {name}={raw!r} is not an integer") from None
    if value < 0:
        raise Reject(400, f"query parameter {name}={raw!r} is negative")
    return value


_ROOT_RE = re.compile(rb"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)[\s/>]")


def _transform(fault: Fault, reply: Reply) -> Reply:
    body = reply.body or f'<DeviceCapability xmlns="{SEP_NS}"><x>1</x></DeviceCapability>'.encode()
    declaration = b""
    if body.startswith(b"<?xml"):
        end = body.index(b"?>") + 2
        declaration, body = body[:end], body[end:].lstrip()
    if fault.kind == "malformed":
        cut = declaration + b"\n" + body
        return Reply(200, cut[: len(cut) // 2], reply.content_type, reply.headers)
    if fault.kind == "wrong_namespace":
        replaced = (declaration + body).replace(SEP_NS.encode(), WRONG_NAMESPACE.encode())
        return Reply(reply.status, replaced, reply.content_type, reply.headers)
    if fault.kind == "wrong_content_type":
        return Reply(reply.status, reply.body, "text/html", reply.headers)
    if fault.kind in {"xxe", "billion_laughs"}:
        match = _ROOT_RE.search(body)
        root = (match.group(1) or b"") + match.group(2) if match else b"DeviceCapability"
        if fault.kind == "xxe":
            entities = b'<!ENTITY xxe SYSTEM "file:///etc/hostname">'
            reference = b"&xxe;"
        else:
            entities = b'<!ENTITY lol0 "lol">' + b"".join(
                b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10)
            )
            reference = b"&lol9;"
        doctype = b"<!DOCTYPE " + root + b" [" + entities + b"]>\n"
        first_close = body.find(b"</")
        if first_close > 0:
            body = body[:first_close] + reference + body[first_close:]
        return Reply(200, declaration + b"\n" + doctype + body, reply.content_type, reply.headers)
    return reply
