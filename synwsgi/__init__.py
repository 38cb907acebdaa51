"""synwsgi: Matrix Synapse's HTTP layer (`synapse.http.server`) as a WSGI toolkit.

The life of a request is `site.Site.serve` (`site.wsgi_app` until middleware
wraps it), one `try` around all of it; `synwsgi.site`'s docstring and
docs/architecture.rst tell it step by step.

The layout: the modules at the top level are the API (their public names are
stable; the most used are exported here); `_internal` is the machinery of the
pipeline, not for import; `observability` holds what plugs in through the
hooks (access log, metrics, tracing, log context); `contrib` the optional
add-ons (the Twisted bridge).

Modules import only those listed before them (type-only imports included;
tests/test_architecture.py checks it):
errors, config, jsonenc, cancellation, clock, pywsgi_worker, _internal.headers,
_internal.collector, _internal.connection, _internal.query
-> body, dispatch, policy, rest, transactions, _internal.jsonbody,
_internal.paths, _internal.runtime
-> responses, _internal.compat, _internal.routing
-> request
-> resources, notifier, ratelimiting, _internal.errormap, _internal.results,
observability.hooks, observability.logcontext
-> site, servlet, static, devserver, observability.accesslog,
observability.metrics, observability.tracing
-> auth -> types.
"""

import importlib as _importlib
import typing as _typing

from ._internal.runtime import cooperate as cooperate
from .auth import Auth as Auth
from .auth import Requester as Requester
from .auth import UserID as UserID
from .auth import create_requester as create_requester
from .auth import get_access_token_from_request as get_access_token_from_request
from .auth import has_access_token as has_access_token
from .cancellation import HTTP_STATUS_REQUEST_CANCELLED as HTTP_STATUS_REQUEST_CANCELLED
from .cancellation import CancelledError as CancelledError
from .cancellation import cancellable as cancellable
from .cancellation import check_cancelled as check_cancelled
from .cancellation import is_function_cancellable as is_function_cancellable
from .cancellation import sleep as sleep
from .config import ServerConfig as ServerConfig
from .devserver import run_dev_server as run_dev_server
from .dispatch import Dispatch as Dispatch
from .errors import AuthError as AuthError
from .errors import CodeMessageException as CodeMessageException
from .errors import Codes as Codes
from .errors import ConsentNotGivenError as ConsentNotGivenError
from .errors import EventSizeError as EventSizeError
from .errors import IncompatibleRoomVersionError as IncompatibleRoomVersionError
from .errors import InteractiveAuthIncompleteError as InteractiveAuthIncompleteError
from .errors import InvalidAPICallError as InvalidAPICallError
from .errors import InvalidCaptchaError as InvalidCaptchaError
from .errors import InvalidClientCredentialsError as InvalidClientCredentialsError
from .errors import InvalidClientTokenError as InvalidClientTokenError
from .errors import LimitExceededError as LimitExceededError
from .errors import LoginError as LoginError
from .errors import MissingClientTokenError as MissingClientTokenError
from .errors import NotApprovedError as NotApprovedError
from .errors import NotFoundError as NotFoundError
from .errors import OAuthInsufficientScopeError as OAuthInsufficientScopeError
from .errors import PasswordRefusedError as PasswordRefusedError
from .errors import RedirectException as RedirectException
from .errors import RequestTooLargeError as RequestTooLargeError
from .errors import ResourceLimitError as ResourceLimitError
from .errors import ResponseAborted as ResponseAborted
from .errors import RoomKeysVersionError as RoomKeysVersionError
from .errors import ShadowBanError as ShadowBanError
from .errors import StoreError as StoreError
from .errors import SynapseError as SynapseError
from .errors import ThreepidValidationError as ThreepidValidationError
from .errors import UnrecognizedRequestError as UnrecognizedRequestError
from .errors import UnredactedContentDeletedError as UnredactedContentDeletedError
from .errors import UnstableSpecAuthError as UnstableSpecAuthError
from .errors import UnsupportedRoomVersionError as UnsupportedRoomVersionError
from .errors import UserDeactivatedError as UserDeactivatedError
from .errors import UserLockedError as UserLockedError
from .errors import cs_error as cs_error
from .jsonenc import encode_canonical_json as encode_canonical_json
from .notifier import Notifier as Notifier
from .observability.accesslog import AccessLogger as AccessLogger
from .observability.hooks import RequestHooks as RequestHooks
from .observability.logcontext import logging_config as logging_config
from .policy import Kind as Kind
from .ratelimiting import Ratelimiter as Ratelimiter
from .ratelimiting import RatelimitSettings as RatelimitSettings
from .request import SynapseRequest as SynapseRequest
from .request import current_request as current_request
from .request import read_body as read_body
from .resources import NOT_DONE_YET as NOT_DONE_YET
from .resources import DirectServeHtmlResource as DirectServeHtmlResource
from .resources import DirectServeJsonResource as DirectServeJsonResource
from .resources import HttpServer as HttpServer
from .resources import JsonResource as JsonResource
from .resources import OptionsResource as OptionsResource
from .resources import Resource as Resource
from .resources import RestServlet as RestServlet
from .resources import RootOptionsRedirectResource as RootOptionsRedirectResource
from .resources import RootRedirect as RootRedirect
from .resources import UnrecognizedRequestResource as UnrecognizedRequestResource
from .responses import HTML_ERROR_TEMPLATE as HTML_ERROR_TEMPLATE
from .responses import Response as Response
from .responses import finish_request as finish_request
from .responses import html_response as html_response
from .responses import json_response as json_response
from .responses import redirect_response as redirect_response
from .responses import respond_with_html as respond_with_html
from .responses import respond_with_html_bytes as respond_with_html_bytes
from .responses import respond_with_json as respond_with_json
from .responses import respond_with_json_bytes as respond_with_json_bytes
from .responses import respond_with_redirect as respond_with_redirect
from .responses import set_clickjacking_protection_headers as set_clickjacking_protection_headers
from .responses import set_corp_headers as set_corp_headers
from .responses import set_cors_headers as set_cors_headers
from .rest import client_patterns as client_patterns
from .rest import interactive_auth_handler as interactive_auth_handler
from .servlet import assert_params_in_dict as assert_params_in_dict
from .servlet import (
    parse_and_validate_json_object_from_request as parse_and_validate_json_object_from_request,
)
from .servlet import parse_boolean as parse_boolean
from .servlet import parse_boolean_from_args as parse_boolean_from_args
from .servlet import parse_bytes_from_args as parse_bytes_from_args
from .servlet import parse_enum as parse_enum
from .servlet import parse_integer as parse_integer
from .servlet import parse_integer_from_args as parse_integer_from_args
from .servlet import parse_json as parse_json
from .servlet import parse_json_from_args as parse_json_from_args
from .servlet import parse_json_object_from_request as parse_json_object_from_request
from .servlet import parse_json_value_from_request as parse_json_value_from_request
from .servlet import parse_string as parse_string
from .servlet import parse_string_from_args as parse_string_from_args
from .servlet import parse_strings_from_args as parse_strings_from_args
from .servlet import validate_json_object as validate_json_object
from .site import Site as Site
from .static import StaticResource as StaticResource
from .transactions import HttpTransactionCache as HttpTransactionCache

if _typing.TYPE_CHECKING:
    from .observability.metrics import MetricsResource as MetricsResource
    from .observability.metrics import ServerMetrics as ServerMetrics

#: Exported, but imported on first use: prometheus_client picks its value
#: store (in memory, or multiprocess files) from PROMETHEUS_MULTIPROC_DIR
#: when it is imported, and a gunicorn config must be able to set that after
#: `import synwsgi` (a worker class in synwsgi is imported before its hooks run).
_LAZY = {"MetricsResource": "observability.metrics", "ServerMetrics": "observability.metrics"}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'synwsgi' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


# Everything above (the lazy names included), and nothing else, is the public API: `from synwsgi import *`
# gives exactly these names (tests/deploy/test_public_api.py keeps the list exact).
__all__ = [
    "HTML_ERROR_TEMPLATE",
    "HTTP_STATUS_REQUEST_CANCELLED",
    "NOT_DONE_YET",
    "AccessLogger",
    "Auth",
    "AuthError",
    "CancelledError",
    "CodeMessageException",
    "Codes",
    "ConsentNotGivenError",
    "DirectServeHtmlResource",
    "DirectServeJsonResource",
    "Dispatch",
    "EventSizeError",
    "HttpServer",
    "HttpTransactionCache",
    "IncompatibleRoomVersionError",
    "InteractiveAuthIncompleteError",
    "InvalidAPICallError",
    "InvalidCaptchaError",
    "InvalidClientCredentialsError",
    "InvalidClientTokenError",
    "JsonResource",
    "Kind",
    "LimitExceededError",
    "LoginError",
    "MetricsResource",
    "MissingClientTokenError",
    "NotApprovedError",
    "NotFoundError",
    "Notifier",
    "OAuthInsufficientScopeError",
    "OptionsResource",
    "PasswordRefusedError",
    "RatelimitSettings",
    "Ratelimiter",
    "RedirectException",
    "RequestHooks",
    "RequestTooLargeError",
    "Requester",
    "Resource",
    "ResourceLimitError",
    "Response",
    "ResponseAborted",
    "RestServlet",
    "RoomKeysVersionError",
    "RootOptionsRedirectResource",
    "RootRedirect",
    "ServerConfig",
    "ServerMetrics",
    "ShadowBanError",
    "Site",
    "StaticResource",
    "StoreError",
    "SynapseError",
    "SynapseRequest",
    "ThreepidValidationError",
    "UnrecognizedRequestError",
    "UnrecognizedRequestResource",
    "UnredactedContentDeletedError",
    "UnstableSpecAuthError",
    "UnsupportedRoomVersionError",
    "UserDeactivatedError",
    "UserID",
    "UserLockedError",
    "assert_params_in_dict",
    "cancellable",
    "check_cancelled",
    "client_patterns",
    "cooperate",
    "create_requester",
    "cs_error",
    "current_request",
    "encode_canonical_json",
    "finish_request",
    "get_access_token_from_request",
    "has_access_token",
    "html_response",
    "interactive_auth_handler",
    "is_function_cancellable",
    "json_response",
    "logging_config",
    "parse_and_validate_json_object_from_request",
    "parse_boolean",
    "parse_boolean_from_args",
    "parse_bytes_from_args",
    "parse_enum",
    "parse_integer",
    "parse_integer_from_args",
    "parse_json",
    "parse_json_from_args",
    "parse_json_object_from_request",
    "parse_json_value_from_request",
    "parse_string",
    "parse_string_from_args",
    "parse_strings_from_args",
    "read_body",
    "redirect_response",
    "respond_with_html",
    "respond_with_html_bytes",
    "respond_with_json",
    "respond_with_json_bytes",
    "respond_with_redirect",
    "run_dev_server",
    "set_clickjacking_protection_headers",
    "set_corp_headers",
    "set_cors_headers",
    "sleep",
    "validate_json_object",
]

__version__ = "0.1.0"
