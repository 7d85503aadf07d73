"""The key agent: a play derives the repository key once; the agent holds it in memory for its own user only."""
import os
import subprocess
import tempfile
import time

import pytest

from ansible_collections.blockvault.vsphere.plugins.module_utils import errors
from ansible_collections.blockvault.vsphere.plugins.module_utils.ops import cancel, key_agent
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import Repository, crypto, open_backend
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo import keyagent
from ansible_collections.blockvault.vsphere.plugins.module_utils.repo.keyagent import KeyAgentClient

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def agent(tmp_path):
    started = key_agent.start_agent(socket_path=str(tmp_path / "unused" / "agent.sock"), ttl=120, idle=60)
    yield started["socket"]
    key_agent.stop_agent(started["socket"])


@pytest.fixture
def repository(tmp_path, monkeypatch):
    monkeypatch.setattr(crypto, "SCRYPT_PARAMS", {"n": 1 << 10, "r": 8, "p": 1})
    location = str(tmp_path / "repo")
    Repository.create(open_backend(location), chunk_size=1 << 20, passphrase=PASSPHRASE).close()
    return location


def test_the_first_open_gives_the_key_and_the_next_ones_need_no_passphrase(agent, repository, monkeypatch):
    client = KeyAgentClient(agent)
    first = Repository.open(open_backend(repository), passphrase=PASSPHRASE, agent=client)
    assert client.info()["repositories"] == 1

    def no_derivation(*args, **kwargs):
        raise AssertionError("the key was derived from the passphrase again")

    monkeypatch.setattr(crypto, "unwrap_key_object", no_derivation)
    second = Repository.open(open_backend(repository), agent=client)
    assert second.keys.aes_key == first.keys.aes_key
    first.close()
    second.close()


def test_a_wrong_key_in_the_agent_is_never_used(agent, repository):
    client = KeyAgentClient(agent)
    location_id = Repository.open(open_backend(repository), passphrase=PASSPHRASE).id
    client.put(location_id, os.urandom(32))             # stale or hostile: it does not authenticate the config
    with pytest.raises(errors.ConfigurationError, match="is encrypted: give its passphrase or key_file"):
        Repository.open(open_backend(repository), agent=client)
    reopened = Repository.open(open_backend(repository), passphrase=PASSPHRASE, agent=client)
    assert reopened.id == location_id
    assert client.get(location_id) == reopened.keys.master_key      # replaced by the key that opened it


def test_the_socket_is_for_its_own_user_only(agent):
    assert oct(os.stat(os.path.dirname(agent)).st_mode & 0o777) == "0o700"
    assert oct(os.stat(agent).st_mode & 0o777) == "0o600"
    if os.getuid() != 0:
        pytest.skip("needs root to try the socket as another user")
    pid = os.fork()
    if pid == 0:                      # another user: the directory keeps it out
        code = 1
        try:
            os.setuid(65534)
            KeyAgentClient(agent).info()
        except errors.ConfigurationError as exc:
            code = 0 if "does not answer (Permission denied)" in str(exc) else 2
        finally:
            os._exit(code)            # pylint: disable=protected-access
    assert os.waitpid(pid, 0)[1] == 0


def test_start_is_idempotent_and_stop_removes_the_socket(agent):
    again = key_agent.start_agent(socket_path=agent)
    assert (again["changed"], again["socket"], again["running"]) == (False, agent, True)
    stopped = key_agent.stop_agent(agent)
    assert stopped == {"changed": True, "running": False, "socket": agent}
    assert not os.path.exists(os.path.dirname(agent))      # gone when stop returns
    assert key_agent.stop_agent(agent)["changed"] is False
    with pytest.raises(errors.ConfigurationError, match="The key agent at %s does not answer" % agent):
        KeyAgentClient(agent).get("anything")


def test_an_agent_that_expires_takes_its_keys_with_it(tmp_path):
    started = key_agent.start_agent(socket_path=str(tmp_path / "x" / "agent.sock"), ttl=1, idle=60)
    client = KeyAgentClient(started["socket"])
    client.put("r", b"k" * 32)
    deadline = time.monotonic() + 30           # it checks its lifetime every second
    while os.path.exists(started["socket"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(started["socket"]) and not os.path.exists(os.path.dirname(started["socket"]))


def _too_deep(tmp_path):
    deep = tmp_path / ("d" * keyagent.MAX_SOCKET_PATH)
    deep.mkdir()
    return deep


def test_a_runtime_directory_too_deep_for_a_socket_path_is_passed_over_for_the_temporary_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(_too_deep(tmp_path)))
    started = key_agent.start_agent(ttl=60, idle=60)
    try:
        assert started["running"] is True
        assert os.path.dirname(os.path.dirname(started["socket"])) == tempfile.gettempdir()
        assert len(os.fsencode(started["socket"])) <= keyagent.MAX_SOCKET_PATH
        KeyAgentClient(started["socket"]).put("r", b"k" * 32)
    finally:
        key_agent.stop_agent(started["socket"])


def test_no_directory_short_enough_for_the_socket_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    deep = _too_deep(tmp_path)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    expected = r"a Unix socket path holds at most 107 bytes, .* set XDG_RUNTIME_DIR or TMPDIR to a shorter directory"
    with pytest.raises(errors.ConfigurationError, match=expected):
        key_agent.start_agent(ttl=60, idle=60)
    assert list(deep.iterdir()) == []


def test_an_agent_that_cannot_listen_tells_its_starter_why(tmp_path, monkeypatch):
    # the socket's directory is not there when the agent binds: its starter reports the agent's own error at once,
    # not a start that timed out
    monkeypatch.setattr(key_agent, "make_socket_path", lambda: str(tmp_path / "gone" / "agent.sock"))
    expected = r"The key agent could not listen on \S*/gone/agent.sock: \[Errno 2\] No such file or directory"
    with pytest.raises(errors.ConfigurationError, match=expected):
        key_agent.start_agent(ttl=60, idle=60)


def test_an_agent_bound_to_its_play_stops_when_the_play_process_ends(tmp_path, monkeypatch):
    # a process of the test stands for ansible-playbook (a unit test has no ansible ancestor)
    play = subprocess.Popen(["sleep", "60"])       # pylint: disable=consider-using-with
    try:
        monkeypatch.setattr(key_agent, "_play_process", lambda: (play.pid, cancel.process_stat(play.pid)[2]))
        started = key_agent.start_agent(socket_path=None, ttl=120, idle=60, stop_with_play=True)
        assert started["stops_with_play"] is True and started["running"] is True
        KeyAgentClient(started["socket"]).put("r", b"k" * 32)
        time.sleep(1.5)
        assert os.path.exists(started["socket"])       # still running while the play does
    finally:
        play.kill()
        play.wait()
    deadline = time.monotonic() + 30
    while os.path.exists(started["socket"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists(started["socket"]) and not os.path.exists(os.path.dirname(started["socket"]))


def test_without_an_ansible_process_above_it_an_agent_cannot_follow_the_play(monkeypatch):
    monkeypatch.setattr(key_agent, "ansible_ancestors", lambda pid: [])
    started = key_agent.start_agent(ttl=60, idle=60, stop_with_play=True)
    try:
        assert started["stops_with_play"] is False and started["running"] is True
    finally:
        key_agent.stop_agent(started["socket"])
