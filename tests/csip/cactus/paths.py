"""The reference server's resource paths (as the procedures name them) for the in-repo server's.

The procedures name endpoints as the reference server (envoy) lays them out, e.g.
``/edev/1/derp/1/derc`` and ``/edev/1/rsps/site_control/rsp``; the in-repo server keeps its
programs at ``/derp/{id}`` and Responses at ``/rsps/...``. :func:`reference_path` maps a
request's local path onto the reference layout so events can match it.
"""

from __future__ import annotations

import fnmatch
import re

from ..server.state import CsipState

_PROGRAM = re.compile(r"/derp/(?P<program>[^/]+)(?P<rest>/dderc|/derc(?:/[^/]+)?)?")


def reference_path(state: CsipState, path: str, edev: int) -> str:
    """``path`` (a request's local path) as the reference server would have it."""
    for fsa in state.fsas.values():
        if path == fsa.derp_path:
            return f"/edev/{edev}/fsa/{fsa.id}/derp"
    match = _PROGRAM.fullmatch(path)
    if match is not None:
        return f"/edev/{edev}/derp/{match['program']}{match['rest'] or ''}"
    if path.startswith("/rsps/"):
        return f"/edev/{edev}/rsps/site_control/rsp"
    return path


def matches(endpoint: str, reference: str) -> bool:
    """An event's endpoint (``*`` a wildcard, as in ``/mup/*``) against a reference path."""
    return fnmatch.fnmatchcase(reference, endpoint)
