"""backup_key_agent: start and stop reach ops.key_agent; stopping needs the socket."""
from ansible_collections.blockvault.vsphere.plugins.modules import backup_key_agent

STARTED = {"changed": True, "running": True, "socket": "/run/user/0/blockvault-agent-x/agent.sock", "pid": 42,
           "expires": "2026-12-04T18:00:00Z"}


def test_start_with_a_lifetime(run_module, ops_call):
    call = ops_call(backup_key_agent.ops_key_agent, "start_agent", result=STARTED)
    outcome, result = run_module(backup_key_agent, dict(ttl=600, idle_timeout=120))
    assert outcome == "exit" and result == STARTED
    assert call.kwargs == {"socket_path": None, "ttl": 600, "idle": 120, "check": False, "stop_with_play": False}


def test_start_bound_to_the_play(run_module, ops_call):
    call = ops_call(backup_key_agent.ops_key_agent, "start_agent", result=dict(STARTED, stops_with_play=True))
    outcome, result = run_module(backup_key_agent, dict(stop_with_play=True))
    assert outcome == "exit" and result["stops_with_play"] is True
    assert call.kwargs["stop_with_play"] is True


def test_stop_needs_the_socket(run_module, ops_call):
    call = ops_call(backup_key_agent.ops_key_agent, "stop_agent", result={"changed": True, "running": False, "socket": "/s"})
    outcome, result = run_module(backup_key_agent, dict(state="absent"))
    assert outcome == "fail" and result["msg"] == "state is absent but all of the following are missing: socket"
    outcome, result = run_module(backup_key_agent, dict(state="absent", socket="/s"), check_mode=True)
    assert outcome == "exit" and call.kwargs == {"socket_path": "/s", "check": True}
