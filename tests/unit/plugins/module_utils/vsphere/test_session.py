"""VSphereSession: TLS policy, error translation, thumbprint from the pooled connection, no secrets anywhere."""
import datetime
import logging
import socket
import ssl
import threading
from types import SimpleNamespace

import pytest
from pyVmomi import vim

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import (
    AuthenticationError, CertificateError, ConfigurationError, VSphereError)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.session import (
    VSphereSession, build_ssl_context, normalize_thumbprint, sha1_thumbprint)
from ansible_collections.blockvault.vsphere.plugins.module_utils.vsphere.settings import VSphereSettings

PASSWORD = "S3cr3t-Pa55"
COOKIE = "52a8c0de-9f0e-secret-cookie"
# SHA-1("abc") = A9993E36 4706816A BA3E2571 7850C26C 9CD0D89D
ABC_THUMBPRINT = "A9:99:3E:36:47:06:81:6A:BA:3E:25:71:78:50:C2:6C:9C:D0:D8:9D"


class FakeStub:
    def __init__(self, der=b"abc"):
        self.der = der
        self.returned = []
        self.dropped = False

    def GetConnection(self):
        return SimpleNamespace(sock=SimpleNamespace(getpeercert=lambda binary_form: self.der))

    def ReturnConnection(self, conn):
        self.returned.append(conn)

    def DropConnections(self):
        self.dropped = True

    def GetSessionId(self):
        return COOKIE


class FakeServiceInstance:
    def __init__(self, der=b"abc", logout_error=None):
        self._stub = FakeStub(der)
        self.logouts = 0
        self.logout_error = logout_error
        self.content = SimpleNamespace(sessionManager=SimpleNamespace(Logout=self._logout),
                                       about=SimpleNamespace(apiVersion="8.0.3.0", apiType="VirtualCenter"))

    def _logout(self):
        self.logouts += 1
        if self.logout_error:
            raise self.logout_error

    def RetrieveContent(self):
        return self.content


def connector(result=None, error=None, calls=None):
    def connect(**kwargs):
        if calls is not None:
            calls.append(kwargs)
        if error is not None:
            raise error
        return result
    return connect


def session(connect, vddk_thumbprint=None, **settings):
    return VSphereSession(VSphereSettings("vc.example.com", "backup@vsphere.local", PASSWORD, **settings),
                          vddk_thumbprint=vddk_thumbprint, connect_function=connect)


def assert_no_secret(err):
    for text in (str(err), repr(err), str(err.to_dict())):
        assert PASSWORD not in text
        assert COOKIE not in text


def test_login_exposes_content_cookie_and_verified_thumbprint_and_logs_out():
    si = FakeServiceInstance()
    calls = []
    with session(connector(si, calls=calls)) as s:
        assert s.content is si.content
        assert s.session_cookie == COOKIE
        assert s.thumbprint == ABC_THUMBPRINT
        assert s.thumbprint_verified is True
        assert s.api_version == "8.0.3.0" and s.is_vcenter
        assert len(si._stub.returned) == 1  # the pooled connection went back to the pool
    assert si.logouts == 1 and si._stub.dropped
    assert calls[0]["host"] == "vc.example.com" and calls[0]["port"] == 443 and calls[0]["pwd"] == PASSWORD
    context = calls[0]["sslContext"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert PASSWORD not in repr(s)
    assert repr(s) == "VSphereSession(host='vc.example.com', port=443, user='backup@vsphere.local', not connected)"


def test_invalid_login_becomes_authentication_error():
    with pytest.raises(AuthenticationError) as caught:
        session(connector(error=vim.fault.InvalidLogin(msg="Cannot complete login due to an incorrect user name or password."))).connect()
    assert str(caught.value) == ("vCenter vc.example.com rejected the user name or password for backup@vsphere.local: "
                                 "check username/password.")
    assert caught.value.phase == "connect"
    assert_no_secret(caught.value)


def test_certificate_failure_becomes_certificate_error_with_advice():
    error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate")
    error.verify_message = "self-signed certificate"
    with pytest.raises(CertificateError) as caught:
        session(connector(error=error)).connect()
    text = str(caught.value)
    assert text.startswith("The TLS certificate of vCenter vc.example.com:443 could not be verified (self-signed certificate).")
    assert "ca_bundle" in text and "validate_certs" in text and "last resort" in text


def test_certificate_failure_wrapped_by_pyvmomi_is_recognised():
    error = vim.fault.HostConnectFault(msg="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:1006)")
    with pytest.raises(CertificateError):
        session(connector(error=error)).connect()


@pytest.mark.parametrize("error, expected", [
    (ConnectionRefusedError(111, "Connection refused"),
     "Cannot connect to vCenter vc.example.com:8443: connection refused. Check hostname and port."),
    (socket.gaierror(-2, "Name or service not known"),
     "Cannot connect to vCenter vc.example.com:8443: the host name does not resolve (Name or service not known). Check hostname."),
    (socket.timeout("timed out"),
     "Cannot connect to vCenter vc.example.com:8443: timed out after 120s. Check hostname, port and firewalls."),
    (Exception("vc.example.com:8443 is down or is not a VIM server"),
     "Cannot log in to vCenter vc.example.com:8443: vc.example.com:8443 is down or is not a VIM server"),
])
def test_network_errors_name_host_and_port(error, expected):
    with pytest.raises(VSphereError) as caught:
        session(connector(error=error), port=8443).connect()
    assert caught.value.__class__ is VSphereError  # not a subclass (authentication/certificate)
    assert str(caught.value) == expected


def test_password_echoed_by_server_is_scrubbed():
    error = vim.fault.NoPermission(msg="user backup tried %s" % PASSWORD)
    with pytest.raises(VSphereError) as caught:
        session(connector(error=error)).connect()
    assert_no_secret(caught.value)
    assert "********" in str(caught.value)


def test_explicit_thumbprint_must_match():
    si = FakeServiceInstance()
    with pytest.raises(CertificateError) as caught:
        session(connector(si), vddk_thumbprint="00" * 20).connect()
    assert str(caught.value).startswith("The certificate of vCenter vc.example.com:443 has SHA-1 thumbprint %s but vddk_thumbprint is %s."
                                        % (ABC_THUMBPRINT, ":".join(["00"] * 20)))
    assert si.logouts == 1  # a failed connect logs out again


def test_explicit_thumbprint_matching_verifies_an_unvalidated_session():
    si = FakeServiceInstance()
    s = session(connector(si), validate_certs=False, vddk_thumbprint=ABC_THUMBPRINT.replace(":", "").lower()).connect()
    assert s.thumbprint == ABC_THUMBPRINT and s.thumbprint_verified is True
    s.close()


def test_unvalidated_session_marks_thumbprint_unverified(caplog):
    calls = []
    with caplog.at_level(logging.WARNING):
        s = session(connector(FakeServiceInstance(), calls=calls), validate_certs=False).connect()
    assert s.thumbprint == ABC_THUMBPRINT and s.thumbprint_verified is False
    assert calls[0]["sslContext"].verify_mode == ssl.CERT_NONE
    assert "unverified thumbprint" in caplog.text
    s.close()


def test_logout_failure_is_logged_not_raised(caplog):
    si = FakeServiceInstance(logout_error=vim.fault.NotAuthenticated(msg="session expired"))
    s = session(connector(si)).connect()
    with caplog.at_level(logging.WARNING):
        s.close()
    assert "logout from vc.example.com:443 failed: session expired" in caplog.text
    assert si._stub.dropped
    s.close()  # idempotent


def test_use_before_connect_is_a_clear_error():
    with pytest.raises(VSphereError, match="not connected"):
        session(connector(FakeServiceInstance())).session_cookie


def test_thumbprint_helpers():
    assert sha1_thumbprint(b"abc") == ABC_THUMBPRINT
    assert normalize_thumbprint("a9993e364706816aba3e25717850c26c9cd0d89d") == ABC_THUMBPRINT
    with pytest.raises(ConfigurationError, match="is not a SHA-1 thumbprint"):
        normalize_thumbprint("AA:BB")


def test_empty_host_or_user_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="hostname is empty"):
        VSphereSession(VSphereSettings("", "u", "p"))
    with pytest.raises(ConfigurationError, match="username is empty"):
        VSphereSession(VSphereSettings("h", "", "p"))


def test_the_http_proxy_is_handed_to_pyvmomi_only_when_given():
    calls = []
    with session(connector(FakeServiceInstance(), calls=calls), proxy_host="proxy.example.com", proxy_port=3128):
        pass
    with session(connector(FakeServiceInstance(), calls=calls)):
        pass
    assert (calls[0]["httpProxyHost"], calls[0]["httpProxyPort"]) == ("proxy.example.com", 3128)
    assert "httpProxyHost" not in calls[1] and "httpProxyPort" not in calls[1]


def test_proxy_settings_are_checked_where_they_are_built():
    with pytest.raises(ConfigurationError, match="proxy_port 3128 is given without proxy_host"):
        VSphereSettings("h", "u", "p", proxy_port=3128)
    with pytest.raises(ConfigurationError, match="proxy_port 70000 is not a TCP port"):
        VSphereSettings("h", "u", "p", proxy_host="proxy", proxy_port=70000)


def test_missing_ca_bundle_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="ca_bundle .*nope.pem does not exist"):
        build_ssl_context(True, str(tmp_path / "nope.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        build_ssl_context(True, str(bad))


# -- a real TLS handshake against a local server with a generated CA ---------------------------

def _make_ca_and_server(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {name: tmp_path / name for name in ("ca.pem", "server.pem", "server.key")}
    paths["ca.pem"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["server.pem"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["server.key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_server(tmp_path):
    """A TLS server that answers every request with 404 (so pyVmomi finds no VIM API behind it)."""
    paths = _make_ca_and_server(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(paths["server.pem"]), str(paths["server.key"]))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                raw, _addr = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except (OSError, ssl.SSLError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], str(paths["ca.pem"])
    stop.set()
    thread.join(5)
    listener.close()


def test_real_handshake_fails_without_the_ca_and_passes_with_it(tls_server):
    port, ca_bundle = tls_server
    with pytest.raises(CertificateError, match="could not be verified"):
        VSphereSession(VSphereSettings("127.0.0.1", "u", PASSWORD, port=port), timeout=5).connect()
    with pytest.raises(VSphereError) as caught:  # verified, then no vSphere API behind it
        VSphereSession(VSphereSettings("127.0.0.1", "u", PASSWORD, port=port, ca_bundle=ca_bundle), timeout=5).connect()
    assert caught.value.__class__ is VSphereError  # not a subclass (authentication/certificate)
    assert "127.0.0.1:%d" % port in str(caught.value)
    assert_no_secret(caught.value)


def test_keepalive_returns_server_time_and_reports_an_ended_session():
    si = FakeServiceInstance()
    answers = ["2026-11-26T09:00:00Z", vim.fault.NotAuthenticated(msg="The session is not authenticated.")]

    def current_time():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    si.CurrentTime = current_time
    s = session(connector(si)).connect()
    assert s.keepalive() == "2026-11-26T09:00:00Z"
    with pytest.raises(VSphereError, match="The vCenter session to vc.example.com:443 has ended"):
        s.keepalive()
