"""The HTTP adapter: a Litestar + msgspec API over the use cases, with RFC 9457 errors and OIP v2."""

from predictor_litestar.app import create_app
from predictor_litestar.observability import Observability, configure_request_log
from predictor_litestar.options import ApiOptions

__all__ = ["ApiOptions", "Observability", "configure_request_log", "create_app"]
