"""What ingest's routers depend on: the app's ports, the authenticated device, the use cases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from services.ingest.domain.errors import Forbidden
from services.ingest.domain.rate_limit import DeviceRateLimiter
from services.ingest.service.admission import Admission, CorrectionTargets, Producer
from services.ingest.service.capture import (
    DEFAULT_CAPTURE_LIMITS,
    Capture,
    CaptureJobs,
    CaptureLimits,
)
from services.registry.principals import Device
from services.registry.store import RegistryStore
from services.web.auth import DEVICE_TOKEN, authenticate_request


@dataclass(frozen=True)
class IngestContext:
    registry: RegistryStore
    corrections: CorrectionTargets
    producer: Producer
    max_body_bytes: int
    max_batch_events: int
    rate_limiter: DeviceRateLimiter | None = None
    capture_jobs: CaptureJobs | None = None
    capture_limits: CaptureLimits = DEFAULT_CAPTURE_LIMITS


def context_of(request: Request) -> IngestContext:
    context: IngestContext = request.app.state.ingest
    return context


def admission_of(request: Request) -> Admission:
    """The use case over the app's ports, built on the app's first request."""
    state = request.app.state
    admission: Admission | None = getattr(state, "admission", None)
    if admission is None:
        context = context_of(request)
        admission = state.admission = Admission(
            registry=context.registry,
            corrections=context.corrections,
            producer=context.producer,
            rate_limiter=context.rate_limiter,
            max_batch_events=context.max_batch_events,
        )
    return admission


def capture_of(request: Request) -> Capture:
    """The EPCIS capture use case, built with the admission use case it admits events through."""
    state = request.app.state
    capture: Capture | None = getattr(state, "capture", None)
    if capture is None:
        context = context_of(request)
        if context.capture_jobs is None:
            raise RuntimeError("this ingest app was built without a capture-job store")
        capture = state.capture = Capture(
            admission_of(request), context.capture_jobs, context.capture_limits
        )
    return capture


async def current_device(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(DEVICE_TOKEN)] = None,
) -> Device:
    principal = await authenticate_request(request, context_of(request).registry)
    if not isinstance(principal, Device):
        raise Forbidden("only registered devices may post scan events")
    return principal


CurrentDevice = Annotated[Device, Depends(current_device)]
