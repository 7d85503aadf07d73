# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A logged-in vCenter session: TLS policy, login, the cookie and thumbprint VDDK needs, logout.

Design notes
- TLS: certificate verification is on by default, against ``ca_bundle`` when given, else the
  system trust store. It is off only when the caller says ``validate_certs=False``. The
  context is handed to pyVmomi explicitly (pyVmomi would otherwise silently skip verification
  for "localhost"), and pyVmomi's own thumbprint pinning is never used: when pinning is set it
  falls back to an unverified handshake whenever normal verification fails.
- Thumbprint for VDDK: read from the peer certificate of a connection in pyVmomi's own pool,
  i.e. the connection that carried the login, verified by our context. When the caller passes
  ``vddk_thumbprint`` it is compared with that certificate and a mismatch is a CertificateError.
  With verification off, ``thumbprint_verified`` is False unless an explicit thumbprint matched.
- Secrets: the password is kept only in a private attribute; ``repr`` shows host, port and user.
  Error messages are built from our own text plus vSphere fault messages, with the password
  scrubbed and ``redact`` applied. The session cookie is exposed for VDDK and never logged.
- Errors: InvalidLogin -> AuthenticationError; certificate verification -> CertificateError;
  refused / unresolvable / timeout -> VSphereError naming host:port.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import ssl

from ..errors import AuthenticationError, CertificateError, ConfigurationError, VSphereError, redact
from ._pyvmomi import fault_message, fault_name, is_fault, require_pyvmomi

try:
    from pyVim.connect import SmartConnect as _SmartConnect
except ImportError:  # pragma: no cover - reported through require_pyvmomi()
    _SmartConnect = None

__all__ = ["VSphereSession", "build_ssl_context", "normalize_thumbprint", "sha1_thumbprint"]

log = logging.getLogger(__name__)

_THUMBPRINT_HEX = re.compile(r"^[0-9A-F]{40}$")


def build_ssl_context(validate_certs=True, ca_bundle=None):
    """Return the SSL context for vCenter connections.

    Verification (chain and host name) is on unless ``validate_certs`` is false; ``ca_bundle``
    (a PEM file or a directory of hashed certificates) replaces the system trust store.
    """
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_bundle:
        if not os.path.exists(ca_bundle):
            raise ConfigurationError("ca_bundle %s does not exist: give the path of the PEM file holding the CA that signed "
                                     "vCenter's certificate." % ca_bundle)
        try:
            if os.path.isdir(ca_bundle):
                return ssl.create_default_context(capath=ca_bundle)
            return ssl.create_default_context(cafile=ca_bundle)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigurationError("ca_bundle %s could not be loaded as PEM certificates (%s)." % (ca_bundle, exc)) from None
    return ssl.create_default_context()


def sha1_thumbprint(der_certificate):
    """The SHA-1 thumbprint of a DER certificate as VDDK wants it: "AA:BB:..." (20 pairs)."""
    digest = hashlib.sha1(der_certificate).hexdigest().upper()  # nosec - a certificate fingerprint, not a password hash
    return ":".join(digest[i:i + 2] for i in range(0, 40, 2))


def normalize_thumbprint(value):
    """Return ``value`` as "AA:BB:..." or raise ConfigurationError (accepts lower case, ':' or no separators)."""
    text = re.sub(r"[\s:\-]", "", str(value or "")).upper()
    if not _THUMBPRINT_HEX.match(text):
        raise ConfigurationError("vddk_thumbprint %r is not a SHA-1 thumbprint: give 20 hex pairs like AA:BB:...:FF." % value)
    return ":".join(text[i:i + 2] for i in range(0, 40, 2))


class VSphereSession:
    """One logged-in session to a vCenter (or ESXi) SOAP endpoint.

    Contract: use as a context manager (``with VSphereSession(settings) as session:``) or call
    ``connect()``/``close()``. After connect, ``content`` is the ServiceContent,
    ``session_cookie`` the vmware_soap_session value, ``thumbprint`` the server certificate's
    SHA-1 thumbprint. ``close()`` logs out and never raises.

    Thread-safety: pyVmomi's stub has a connection pool and a lock, so several threads may make
    calls through one session; connect() and close() must not race with other calls.
    """

    def __init__(self, settings, vddk_thumbprint=None, timeout=120, connect_function=None):
        """``settings``: a VSphereSettings (already validated: host, username, password, port, validate_certs,
        ca_bundle). ``vddk_thumbprint``: the thumbprint the user gave for VDDK, checked against the certificate at
        login. ``timeout``: seconds for the HTTP connection. ``connect_function``: replaces pyVmomi's SmartConnect
        (tests)."""
        self.host = str(settings.host)
        self.port = int(settings.port)
        self.user = str(settings.username)
        self._password = settings.password or ""
        self.validate_certs = bool(settings.validate_certs)
        self.ca_bundle = settings.ca_bundle
        self.proxy_host = settings.proxy_host
        self.proxy_port = settings.proxy_port
        self.expected_thumbprint = normalize_thumbprint(vddk_thumbprint) if vddk_thumbprint else None
        self.timeout = timeout
        self._connect_function = connect_function
        self.service_instance = None
        self.content = None
        self.thumbprint = None
        self.thumbprint_verified = False

    def __repr__(self):
        state = "connected" if self.service_instance is not None else "not connected"
        return "VSphereSession(host=%r, port=%d, user=%r, %s)" % (self.host, self.port, self.user, state)

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    @property
    def endpoint(self):
        return "%s:%d" % (self.host, self.port)

    def connect(self):
        """Log in; raise AuthenticationError, CertificateError or VSphereError (never with the password)."""
        require_pyvmomi()
        if self.service_instance is not None:
            return self
        context = build_ssl_context(self.validate_certs, self.ca_bundle)
        connect = self._connect_function or _SmartConnect
        proxy = {"httpProxyHost": self.proxy_host, "httpProxyPort": int(self.proxy_port)} if self.proxy_host else {}
        try:
            service_instance = connect(host=self.host, port=self.port, user=self.user, pwd=self._password,
                                       sslContext=context, httpConnectionTimeout=self.timeout, **proxy)
        except Exception as exc:  # translated below; everything else is a bug worth a clear message
            raise self._translate_connect_error(exc) from None
        self.service_instance = service_instance
        try:
            self.content = service_instance.RetrieveContent()
            self._check_thumbprint(self._peer_certificate())
        except BaseException:
            self.close()
            raise
        log.debug("connected to %s as %s (api %s)", self.endpoint, self.user, self.api_version)
        return self

    def close(self):
        """Log out and drop pooled connections. Errors are logged, never raised (a cleanup step)."""
        service_instance, self.service_instance = self.service_instance, None
        content, self.content = self.content, None
        if service_instance is None:
            return
        try:
            if content is None:  # connect() failed after login: still log out
                content = service_instance.RetrieveContent()
            content.sessionManager.Logout()
        except Exception as exc:  # the session may already have expired; nothing to clean up then
            log.warning("logout from %s failed: %s", self.endpoint, self._scrub(fault_message(exc)))
        try:
            service_instance._stub.DropConnections()
        except Exception as exc:
            log.debug("dropping connections to %s failed: %s", self.endpoint, self._scrub(str(exc)))

    # -- what other layers need ----------------------------------------------------------------

    @property
    def stub(self):
        """pyVmomi's SOAP stub (to build managed objects from morefs)."""
        self._require_connected()
        return self.service_instance._stub

    @property
    def session_cookie(self):
        """The vmware_soap_session cookie value (VDDK SESSIONID credentials). A secret: never log it."""
        self._require_connected()
        return self.stub.GetSessionId()

    @property
    def api_version(self):
        about = getattr(self.content, "about", None)
        return getattr(about, "apiVersion", None)

    @property
    def is_vcenter(self):
        about = getattr(self.content, "about", None)
        return getattr(about, "apiType", None) == "VirtualCenter"

    def keepalive(self):
        """Touch the session so vCenter's idle timeout does not end it while VDDK uses its cookie.

        Call it every few minutes during long transfers (the ops layer's progress loop). Returns the
        server time; raises VSphereError when the session has ended (NotAuthenticated).
        """
        self._require_connected()
        try:
            return self.service_instance.CurrentTime()
        except Exception as exc:
            if is_fault(exc, "NotAuthenticated"):
                raise VSphereError("The vCenter session to %s has ended (idle timeout or logout by an administrator)." % self.endpoint,
                                   hint="Run the operation again; lower the interval between keepalive calls.") from None
            raise

    def managed_object(self, vim_type, moref):
        """A managed object of ``vim_type`` (e.g. vim.VirtualMachine) bound to this session, from its moref id."""
        return vim_type(moref, self.stub)

    # -- internals -----------------------------------------------------------------------------

    def _require_connected(self):
        if self.service_instance is None:
            raise VSphereError("The vCenter session to %s is not connected (connect() first or use it as a context manager)."
                               % self.endpoint)

    def _peer_certificate(self):
        """DER certificate of the server, from a connection of pyVmomi's pool (verified by our context)."""
        stub = self.service_instance._stub
        connection = stub.GetConnection()
        try:
            sock = getattr(connection, "sock", None)
            if sock is None:
                connection.connect()
                sock = connection.sock
            return sock.getpeercert(binary_form=True)
        finally:
            stub.ReturnConnection(connection)

    def _check_thumbprint(self, der_certificate):
        if not der_certificate:
            raise CertificateError("vCenter %s presented no TLS certificate, so VDDK cannot be given a thumbprint." % self.endpoint)
        actual = sha1_thumbprint(der_certificate)
        if self.expected_thumbprint and self.expected_thumbprint != actual:
            raise CertificateError(
                "The certificate of vCenter %s has SHA-1 thumbprint %s but vddk_thumbprint is %s." % (
                    self.endpoint, actual, self.expected_thumbprint),
                hint="Check that you reach the right server, then fix or remove vddk_thumbprint.")
        self.thumbprint = actual
        self.thumbprint_verified = self.validate_certs or self.expected_thumbprint is not None
        if not self.thumbprint_verified:
            log.warning("certificate validation is off for %s: using its unverified thumbprint %s for VDDK", self.endpoint, actual)

    def _scrub(self, text):
        text = str(text)
        if self._password and len(self._password) >= 3:
            text = text.replace(self._password, "********")
        return redact(text)

    def _translate_connect_error(self, exc):
        endpoint = self.endpoint
        if self.proxy_host:
            proxy_error = self._proxy_error(exc)
            if proxy_error is not None:
                return proxy_error
        if is_fault(exc, "InvalidLogin"):
            return AuthenticationError(
                "vCenter %s rejected the user name or password for %s: check username/password." % (self.host, self.user))
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            reason = getattr(exc, "verify_message", None) or self._scrub(str(exc))
            return CertificateError(
                "The TLS certificate of vCenter %s could not be verified (%s)." % (endpoint, reason),
                hint="Give ca_bundle (the PEM file of the CA that signed it) or fix the certificate; set validate_certs "
                     "to false only as a last resort.")
        if isinstance(exc, ssl.SSLError):
            return VSphereError("TLS handshake with vCenter %s failed (%s): check that the port speaks HTTPS." % (
                endpoint, self._scrub(str(exc))))
        if isinstance(exc, socket.gaierror):
            return VSphereError("Cannot connect to vCenter %s: the host name does not resolve (%s). Check hostname." % (
                endpoint, exc.strerror or exc))
        if isinstance(exc, ConnectionRefusedError):
            return VSphereError("Cannot connect to vCenter %s: connection refused. Check hostname and port." % endpoint)
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return VSphereError("Cannot connect to vCenter %s: timed out after %ss. Check hostname, port and firewalls."
                                % (endpoint, self.timeout))
        if isinstance(exc, OSError):
            return VSphereError("Cannot connect to vCenter %s: %s. Check hostname and port." % (
                endpoint, self._scrub(exc.strerror or str(exc))))
        if hasattr(type(exc), "_wsdlName"):
            return VSphereError("vCenter %s refused the connection: %s (%s)." % (
                endpoint, self._scrub(fault_message(exc)), fault_name(exc)))
        # pyVmomi raises a plain Exception when the endpoint answers but is no vSphere API
        return VSphereError("Cannot log in to vCenter %s: %s" % (endpoint, self._scrub(str(exc))))

    def _proxy_error(self, exc):
        """The error of a connection through the HTTP proxy that failed at the proxy, or None (then the failure
        is vCenter's, translated as without a proxy). http.client reports a refused tunnel as
        ``OSError("Tunnel connection failed: 403 Forbidden")``; the other OSErrors before TLS are the proxy's own."""
        proxy = "%s:%s" % (self.proxy_host, self.proxy_port)
        text = self._scrub(str(exc))
        if "Tunnel connection failed" in text:
            return VSphereError("The HTTP proxy %s refused to connect to vCenter %s (%s): check that the proxy allows "
                                "CONNECT to that host and port." % (proxy, self.endpoint, text))
        if isinstance(exc, socket.gaierror):
            return VSphereError("Cannot reach the HTTP proxy %s: its host name does not resolve (%s). Check proxy_host."
                                % (proxy, exc.strerror or exc))
        if isinstance(exc, ConnectionRefusedError):
            return VSphereError("Cannot reach the HTTP proxy %s: connection refused. Check proxy_host and proxy_port."
                                % proxy)
        return None
