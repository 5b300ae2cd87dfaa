"""Typed application state shared by the handlers (aiohttp `AppKey`s, no globals)."""

from __future__ import annotations

from aiohttp import web

from telecart.config import ServerConfig
from telecart.server.broker import Broker
from telecart.server.consultations import ConsultationRouter
from telecart.server.metrics import ServerMetrics
from telecart.server.rate_limit import AttemptLimiter
from telecart.server.store import Store

CONFIG = web.AppKey("config", ServerConfig)
STORE = web.AppKey("store", Store)
BROKER = web.AppKey("broker", Broker)
ROUTER = web.AppKey("router", ConsultationRouter)
METRICS = web.AppKey("metrics", ServerMetrics)
LOGIN_LIMITER = web.AppKey("login_limiter", AttemptLimiter)


class OpenSockets(set[web.WebSocketResponse]):
    """Every open WebSocket, so shutdown can close each with a code."""


SOCKETS = web.AppKey("sockets", OpenSockets)
