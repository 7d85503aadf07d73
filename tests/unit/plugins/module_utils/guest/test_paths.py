"""Guest paths as users write them: POSIX and Windows forms, and the refusals."""
import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils.errors import ConfigurationError
from ansible_collections.blockvault.vsphere.plugins.module_utils.guest.paths import local_name, parse_guest_path


@pytest.mark.parametrize("text, path, letter, windows", [
    ("/etc/hosts", "/etc/hosts", None, False),
    ("//etc/./app//conf/", "/etc/app/conf", None, False),
    ("C:\\Users\\alice\\file.txt", "/Users/alice/file.txt", "C", True),
    ("d:/Data/x", "/Data/x", "D", True),
    ("C:", "/", "C", True),
    ("\\Windows\\System32", "/Windows/System32", None, True),
])
def test_paths_are_normalised(text, path, letter, windows):
    parsed = parse_guest_path(text)
    assert (parsed.path, parsed.letter, parsed.windows, parsed.text) == (path, letter, windows, text)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("   ", "empty"),
    ("etc/hosts", "relative"),
    ("C:Users", "relative"),
    ("/etc/../shadow", "'..'"),
    ("C:\\Users\\..\\..\\x", "'..'"),
    ("/a\x00b", "NUL"),
])
def test_bad_paths_are_refused_naming_them(text, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_guest_path(text)


def test_the_local_name_is_the_last_component_and_a_root_is_refused():
    assert local_name(parse_guest_path("/etc/app/")) == "app"
    assert local_name(parse_guest_path("C:\\Users\\alice\\Doc.txt")) == "Doc.txt"
    with pytest.raises(ConfigurationError, match="root of a filesystem"):
        local_name(parse_guest_path("C:\\"))
