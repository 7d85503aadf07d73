"""Connection parameters without a library: validation, thumbprint and cookie normalisation, no secrets shown."""
import ctypes
import dataclasses

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import connection as C
from ansible_collections.blockvault.vsphere.plugins.module_utils.vddk import structs as S

TP = "14:C6:F2:C3:2F:1F:79:25:F7:C6:51:1F:FE:DF:C3:50:D7:3C:11:F6"


class NoLibrary:
    """Stands for a VDDK without AllocateConnectParams: parameters live in a ctypes structure."""

    def has(self, name):
        return False


@pytest.mark.parametrize("given", [TP, TP.lower(), TP.replace(":", ""), TP.replace(":", " ")])
def test_thumbprint_normalised(given):
    assert C.normalize_thumbprint(given) == TP


@pytest.mark.parametrize("given", ["", None, TP[:-3], TP + ":00", "ZZ" + TP[2:]])
def test_bad_thumbprint(given):
    with pytest.raises(ConfigurationError) as info:
        C.normalize_thumbprint(given)
    assert "is not a SHA-1 fingerprint" in str(info.value)


@pytest.mark.parametrize("raw, value", [
    ('vmware_soap_session="52a1-b2"; Path=/; HttpOnly; Secure; ', '"52a1-b2"'),
    ("vmware_soap_session=10ac5e62-7458; HttpOnly", "10ac5e62-7458"),
    ("10ac5e62-7458", "10ac5e62-7458"),
])
def test_session_cookie_value(raw, value):
    assert C.session_cookie_value(raw) == value


def test_uid_params_and_no_secret_in_repr():
    conn = C.Connection(NoLibrary(), C.ConnectParams("vc.example", "vm-57", TP, user="backup@vsphere.local", password="S3cret!",
                                                     snapshot_moref="snapshot-70", port=8443))
    p = conn._ensure_params()
    assert isinstance(p, S.ConnectParams)
    assert (p.vmxSpec, p.serverName, p.thumbPrint) == (b"moref=vm-57", b"vc.example", TP.encode())
    assert (p.credType, p.port, p.nfcHostPort, p.specType) == (S.CRED_UID, 8443, 902, S.SPEC_VMX)
    assert (p.creds.uid.userName, p.creds.uid.password) == (b"backup@vsphere.local", b"S3cret!")
    assert "S3cret" not in repr(conn)
    assert repr(conn) == ("Connection(server='vc.example', port=8443, vm='vm-57', snapshot='snapshot-70', "
                          "read_only=True, modes='nbdssl:nbd', not connected)")


def test_close_wipes_secrets():
    conn = C.Connection(NoLibrary(), C.ConnectParams("vc", "vm-1", TP, user="u", password="S3cret!"))
    buf = conn._buffers["password"]
    conn.close()
    assert buf.raw == b"\0" * ctypes.sizeof(buf)
    assert conn._buffers["userName"].value == b"u"
    with pytest.raises(ConfigurationError) as info:
        conn.connect()
    assert str(info.value) == "This VDDK connection was closed; create a new one."


def test_session_params():
    conn = C.Connection(NoLibrary(), C.ConnectParams("vc", "vm-1", TP, user="u", session_cookie="vmware_soap_session=abc; HttpOnly"))
    p = conn._ensure_params()
    assert p.credType == S.CRED_SESSIONID
    assert (p.creds.sessionId.cookie, p.creds.sessionId.userName, p.creds.sessionId.key) == (b"abc", b"u", None)


@pytest.mark.parametrize("kwargs, message", [
    (dict(server=""), "needs a server"),
    (dict(vm_moref="vm 57"), "The VM managed object id 'vm 57' is not valid"),
    (dict(snapshot_moref="snap/1"), "The snapshot managed object id 'snap/1' is not valid"),
    (dict(password=None), "needs a user name and password, or a session cookie"),
    (dict(port=70000), "The VDDK port 70000 is not a TCP port."),
    (dict(transport_modes="hotadd:nfs"), "The VDDK transport modes 'hotadd:nfs' are not a ':'-separated list"),
])
def test_validation(kwargs, message):
    args = dict(server="vc", vm_moref="vm-1", thumbprint=TP, user="u", password="p")
    args.update(kwargs)
    with pytest.raises(ConfigurationError) as info:
        C.ConnectParams(**args)
    assert message in str(info.value)


def test_user_transport_modes_kept():
    conn = C.Connection(NoLibrary(), C.ConnectParams("vc", "vm-1", TP, user="u", password="p", transport_modes="hotadd:nbdssl:nbd"))
    assert conn.transport_modes == "hotadd:nbdssl:nbd"


def test_params_are_normalised_once_and_show_no_secret():
    params = C.ConnectParams("vc", "vm-1", TP.lower(), user="u", password="S3cret!", session_cookie="c00kie", session_key="k3y",
                             port="8443", transport_modes=None)
    assert (params.thumbprint, params.port, params.transport_modes) == (TP, 8443, "nbdssl:nbd")
    assert repr(params) == ("ConnectParams(server='vc', vm_moref='vm-1', thumbprint='%s', user='u', port=8443, "
                            "snapshot_moref=None, transport_modes='nbdssl:nbd', nfc_host_port=902)" % TP)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.server = "elsewhere"
