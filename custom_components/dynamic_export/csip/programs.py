"""The DER programs assigned to our device, with their default controls and events.

They are read through the FunctionSetAssignments of our EndDevice: each assignment links a
DERProgramList, each program its DefaultDERControl and DERControlList. A new set is handed
on only once every program list has been read, so a poll that fails half-way never drops
the controls of the lists it did not get to.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from .connection import Connection, RequestFailedError
from .sep2.discovery import poll_rate
from .sep2.parse import (
    parse_default_der_control,
    parse_der_control_list,
    parse_der_program_list,
    parse_function_set_assignments_list,
)
from .sep2.resources import DefaultDERControl, DERControl, DERProgram, FunctionSetAssignments
from .timetable import Timetable


class Programs:
    """Polls the function set assignments and their program lists."""

    def __init__(self, connection: Connection, timetable: Timetable) -> None:
        """Nothing known yet."""
        self._connection = connection
        self._timetable = timetable
        self._fsas: dict[str, FunctionSetAssignments] = {}
        """By the DERProgramList each one links."""
        self._programs: dict[str, tuple[DERProgram, ...]] = {}
        """By DERProgramList href."""

    def forget(self) -> None:
        """Drop everything (the EndDevice they came from is not ours any more)."""
        self._fsas.clear()
        self._programs.clear()
        self._timetable.drop("fsa")
        self._timetable.drop_all("derp ")

    async def refresh(self, now: float, fsa_list_href: str | None) -> list[DERProgram] | None:
        """Poll what is due; every program (once per mRID) when the set changed, else None."""
        changed = False
        # An empty list is as current as a full one: its pollRate holds too.
        if fsa_list_href is not None and self._timetable.is_due("fsa", now):
            changed = await self._refresh_assignments(now, fsa_list_href)
        for href in self._fsas:
            job = f"derp {href}"
            # A list that failed waits for its retry like any other (never planned: due now).
            if not self._timetable.is_due(job, now):
                continue
            try:
                programs, rate, failed = await self._fetch(href)
            except RequestFailedError as err:
                self._timetable.retry(job, now, poll_rate("derp", None), after=err.retry_after)
                continue
            self._programs[href] = programs
            if failed is None:
                self._timetable.plan(job, now, rate)
            else:
                self._timetable.retry(job, now, rate, after=failed.retry_after)
            changed = True
        if not changed or any(href not in self._programs for href in self._fsas):
            return None
        unique: dict[str, DERProgram] = {}
        for programs in self._programs.values():
            for program in programs:
                unique.setdefault(program.mrid, program)
        return list(unique.values())

    async def _refresh_assignments(self, now: float, href: str) -> bool:
        """Read the FunctionSetAssignmentsList; whether the set of program lists changed."""
        try:
            listing = await self._connection.get_list(
                "FunctionSetAssignmentsList", href, parse_function_set_assignments_list
            )
        except RequestFailedError as err:
            self._timetable.retry("fsa", now, poll_rate("fsa", None), after=err.retry_after)
            return False
        fsas = {f.der_program_list_href: f for f in listing.items if f.der_program_list_href}
        changed = fsas.keys() != self._fsas.keys()
        for gone in self._fsas.keys() - fsas.keys():
            self._programs.pop(gone, None)
            self._timetable.drop(f"derp {gone}")
        self._fsas = fsas
        self._timetable.plan("fsa", now, poll_rate("fsa", listing.poll_rate))
        return changed

    async def _fetch(
        self, href: str
    ) -> tuple[tuple[DERProgram, ...], int, RequestFailedError | None]:
        """One DERProgramList with its programs' defaults and controls, and its poll rate.

        Also the last failure of a program's default or control list: that part keeps what
        was last read of it (none, the first time), so a rate-limited DERControlList never
        hides a DefaultDERControl just read; the caller retries the list after the delay.
        """
        connection = self._connection
        listing = await connection.get_list(f"DERProgramList {href}", href, parse_der_program_list)
        before = {p.mrid: p for p in self._programs.get(href, ())}
        failed: RequestFailedError | None = None
        programs: list[DERProgram] = []
        for program in listing.items:
            known = before.get(program.mrid)
            default: DefaultDERControl | None = None
            if program.default_control_href is not None:
                try:
                    default = await connection.get_optional(
                        f"DefaultDERControl {program.default_control_href}",
                        program.default_control_href,
                        functools.partial(parse_default_der_control, program=program),
                    )
                except RequestFailedError as err:
                    failed = err
                    default = None if known is None else known.default_control
            controls: tuple[DERControl, ...] = ()
            if program.control_list_href is not None:
                try:
                    control_list = await connection.get_list(
                        f"DERControlList {program.control_list_href}",
                        program.control_list_href,
                        functools.partial(parse_der_control_list, program=program),
                    )
                    controls = control_list.items
                except RequestFailedError as err:
                    failed = err
                    controls = () if known is None else known.controls
            programs.append(replace(program, default_control=default, controls=controls))
        return tuple(programs), poll_rate("derp", listing.poll_rate), failed
