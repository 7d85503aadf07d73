# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one helper the Ansible modules share (private to the collection: the leading ``_``).

It holds the shared argument specs (mirrored one to one by plugins/doc_fragments/{vsphere,vddk,repository}.py),
builds the ``ops.settings`` values from the parameters, runs an operation and turns its outcome into the module
result. ``BlockvaultModule.run`` is the only place in the collection that calls ``exit_json`` or ``fail_json``:
operations return plain dicts or raise ``errors.BlockvaultError`` subclasses, and this module translates both.

Nothing here imports a third-party library; the engine guards its own imports and raises
MissingDependencyError, which becomes the usual missing_required_lib failure.

Cancel (ops.cancel): ``run`` makes the run's Cancellation, handed to the operation through ``run_settings()``.
SIGTERM, SIGINT and SIGHUP request it (so Ctrl-C on ansible-playbook, which ansible forwards to its workers, ends in
a CancelledError that names the signal, not in KeyboardInterrupt); so does the end of the ansible processes that
started the module when it runs without ``async`` (ansible-runner, and so AWX, kills ansible-playbook's process
group on cancel and timeouts, which leaves ansible's worker and this module running in their own session).
"""

from __future__ import annotations

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, env_fallback, missing_required_lib
from ansible.module_utils.common.parameters import remove_values

from .errors import BlockvaultError, ConfigurationError, MissingDependencyError, ValidationFailedError, redact
from .ops.cancel import Cancellation, ControllerWatch
from .ops.requests import Endpoints, RunSettings
from .ops.settings import RepositorySettings, VddkSettings, VSphereSettings

__all__ = [
    "BlockvaultModule", "vsphere_argument_spec", "vddk_argument_spec", "repository_argument_spec",
    "PASSPHRASE_ENV", "MIB", "disk_reference", "repository_settings_from",
]

#: environment variable read for the repository passphrase when neither passphrase nor key_file is given
PASSPHRASE_ENV = "BLOCKVAULT_PASSPHRASE"

MIB = 1024 * 1024


def vsphere_argument_spec():
    """Options to reach vCenter; documented by the blockvault.vsphere.vsphere doc fragment."""
    return dict(
        hostname=dict(type="str", fallback=(env_fallback, ["VMWARE_HOST"])),
        port=dict(type="int", default=443, fallback=(env_fallback, ["VMWARE_PORT"])),
        # the aliases community.vmware and vmware.vmware accept, so that their users' task options carry over
        username=dict(type="str", aliases=["admin", "user"], fallback=(env_fallback, ["VMWARE_USER"])),
        password=dict(type="str", aliases=["pass", "pwd"], no_log=True, fallback=(env_fallback, ["VMWARE_PASSWORD"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["VMWARE_VALIDATE_CERTS"])),
        ca_bundle=dict(type="path", fallback=(env_fallback, ["VMWARE_CA_BUNDLE"])),
        # community.vmware's names and environment variables
        proxy_host=dict(type="str", fallback=(env_fallback, ["VMWARE_PROXY_HOST"])),
        proxy_port=dict(type="int", fallback=(env_fallback, ["VMWARE_PROXY_PORT"])),
    )


def vddk_argument_spec():
    """Options that locate VDDK; documented by the blockvault.vsphere.vddk doc fragment."""
    return dict(
        vddk_libdir=dict(type="path", fallback=(env_fallback, ["VDDK_LIBDIR"])),
        vddk_thumbprint=dict(type="str", fallback=(env_fallback, ["VDDK_THUMBPRINT"])),
        transports=dict(type="str", default="nbdssl:nbd"),
        vddk_config_file=dict(type="path"),
    )


def repository_argument_spec():
    """Options that locate and open a repository; documented by the blockvault.vsphere.repository doc fragment.

    The passphrase has no spec-level env fallback on purpose: an explicit key_file must win over a
    BLOCKVAULT_PASSPHRASE left in the environment, so BlockvaultModule.repository_settings reads it.
    """
    return dict(
        repository=dict(type="str"),
        # no spec-level env fallback for the S3 options either: AWS_* variables set for other tools must not make a
        # local repository look like one given S3 options (repository_settings_from reads them for s3:// only)
        s3_endpoint_url=dict(type="str"),
        region=dict(type="str"),
        aws_access_key=dict(type="str", no_log=False),
        aws_secret_key=dict(type="str", no_log=True),
        aws_session_token=dict(type="str", no_log=True),
        s3_validate_certs=dict(type="bool", default=True),
        object_lock_days=dict(type="int"),
        passphrase=dict(type="str", no_log=True),
        key_file=dict(type="path", no_log=False),
        key_agent=dict(type="path", no_log=False, fallback=(env_fallback, ["BLOCKVAULT_KEY_AGENT"])),
    )


# the S3 options an s3:// repository takes from the environment when they are not given, as boto3 would
S3_ENVIRONMENT = {"s3_endpoint_url": ("AWS_ENDPOINT_URL",), "region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
                  "aws_access_key": ("AWS_ACCESS_KEY_ID",), "aws_secret_key": ("AWS_SECRET_ACCESS_KEY",),
                  "aws_session_token": ("AWS_SESSION_TOKEN",)}


def s3_options(options):
    """The S3 options of ``options`` (the repository options), the missing ones of an s3:// location read from the
    environment (S3_ENVIRONMENT); a local location keeps only what was given."""
    values = {name: options[name] for name in S3_ENVIRONMENT}
    if str(options["repository"] or "").startswith("s3://"):
        for name, variables in S3_ENVIRONMENT.items():
            if values[name] is None:
                values[name] = next((os.environ[var] for var in variables if os.environ.get(var)), None)
    return values


def repository_settings_from(options, passphrase, **extra):
    """RepositorySettings from a dict of the repository options (a module's own, or backup_copy's destination), with
    the ``passphrase`` to use and ``extra`` settings only some of them have (key_agent, storage_class)."""
    s3 = s3_options(options)
    return RepositorySettings(
        location=options["repository"],
        passphrase=passphrase,
        key_file=options["key_file"],
        s3_endpoint_url=s3["s3_endpoint_url"],
        region=s3["region"],
        access_key=s3["aws_access_key"],
        secret_key=s3["aws_secret_key"],
        session_token=s3["aws_session_token"],
        object_lock_days=options["object_lock_days"],
        validate_certs=options["s3_validate_certs"],
        **extra,
    )


def disk_reference(value):
    """A disk named by the user, as the engine matches it: a label ("Hard disk 1") or a device key as a string
    ("2000"; YAML may have made it the int 2000)."""
    if value is None:
        return None
    return str(value).strip()


class BlockvaultModule(object):
    """A wrapper around AnsibleModule (not a subclass) for every module of the collection.

    Contract: construct it in main() with the module's own argument spec; then call ``run(operation)`` once.
    Every module accepts the shared vSphere and VDDK options, used or not, so that one ``module_defaults`` group
    (``group/blockvault.vsphere.vsphere``) can carry connection, VDDK and repository settings for all of them;
    ``repository=False`` leaves the repository options out (no module does today); setting ``cancellable`` to False
    before ``run`` leaves out the cancel handling (signals, controller watch) for a module that only reads for a
    moment. ``operation`` takes
    this wrapper and returns the result dict; it builds settings with ``vsphere_settings()``,
    ``vddk_settings()`` and ``repository_settings()`` (their ConfigurationError becomes a failure like any
    other engine error). ``run`` never returns. One instance per module run; not thread-safe (nor needs be).
    """

    def __init__(self, argument_spec, repository=True, mutually_exclusive=None,
                 required_one_of=None, required_if=None, required_together=None, supports_check_mode=True):
        spec = dict(vsphere_argument_spec(), **vddk_argument_spec())
        mutually_exclusive = list(mutually_exclusive or [])
        if repository:
            spec.update(repository_argument_spec())
            mutually_exclusive.append(["passphrase", "key_file"])
        shadowed = sorted(set(spec) & set(argument_spec))
        if shadowed:
            raise ValueError("module options %s shadow shared options" % ", ".join(shadowed))
        spec.update(argument_spec)
        # Built outside any try block: validate-modules captures the spec by making this call raise.
        self.module = AnsibleModule(
            argument_spec=spec,
            supports_check_mode=supports_check_mode,
            mutually_exclusive=mutually_exclusive,
            required_one_of=required_one_of or [],
            required_if=required_if or [],
            required_together=required_together or [],
        )
        self.cancellation = Cancellation()
        self.cancellable = True

    @property
    def params(self):
        return self.module.params

    @property
    def check_mode(self):
        return bool(self.module.check_mode)

    @property
    def diff_mode(self):
        return bool(self.module._diff)

    # -- settings ---------------------------------------------------------------------------------------------

    def vsphere_settings(self, optional=False):
        """VSphereSettings from the vSphere options; None when ``optional`` and no hostname is given."""
        params = self.params
        if optional and not params.get("hostname"):
            return None
        return VSphereSettings(
            host=params["hostname"],
            username=params["username"],
            password=params["password"] or "",
            port=params["port"],
            validate_certs=params["validate_certs"],
            ca_bundle=params["ca_bundle"],
            proxy_host=params["proxy_host"],
            proxy_port=params["proxy_port"],
        )

    def vddk_settings(self, optional=False):
        """VddkSettings from the VDDK options; None when ``optional`` and no vddk_libdir is given."""
        params = self.params
        if optional and not params.get("vddk_libdir"):
            return None
        return VddkSettings(
            libdir=params["vddk_libdir"],
            thumbprint=params["vddk_thumbprint"],
            transports=params["transports"],
            config_file=params["vddk_config_file"],
        )

    def repository_settings(self):
        """RepositorySettings from the repository options (the passphrase may come from BLOCKVAULT_PASSPHRASE)."""
        params = self.params
        passphrase = params["passphrase"]
        if passphrase is None and not params["key_file"]:
            passphrase = os.environ.get(PASSPHRASE_ENV) or None
            if passphrase:
                # a value AnsibleModule did not see as a parameter: mask it in every output like the others
                self.module.no_log_values.add(passphrase)
        settings = repository_settings_from(params, passphrase, key_agent=params["key_agent"])
        # secrets read from the environment rather than given: masked in every output like the others
        self.module.no_log_values.update(value for value in (settings.secret_key, settings.session_token) if value)
        return settings

    def endpoints(self, vsphere=True):
        """Endpoints of the run: the repository, and vCenter and VDDK unless ``vsphere`` is false (then optional)."""
        return Endpoints(repo=self.repository_settings(), vsphere=self.vsphere_settings(optional=not vsphere),
                         vddk=self.vddk_settings(optional=not vsphere))

    def run_settings(self, **values):
        """RunSettings from the options workers, memory_budget_mb and status_file (when the module has them), with
        check mode; ``values`` override (e.g. a module whose workers default differs)."""
        params = self.params
        for option in ("workers", "memory_budget_mb"):
            if option in params and params[option] < 1:
                raise ConfigurationError("%s is %d: give 1 or more%s." % (option, params[option], " MiB" if option.endswith("_mb") else ""))
        settings = {"check": self.check_mode, "cancellation": self.cancellation}
        if "workers" in params:
            settings["workers"] = params["workers"]
        if "memory_budget_mb" in params:
            settings["memory_budget"] = params["memory_budget_mb"] * MIB
        if "status_file" in params:
            settings["status_file"] = params["status_file"]
        settings.update(values)
        return RunSettings(**settings)

    # -- running and reporting --------------------------------------------------------------------------------

    def run(self, operation):
        """Run ``operation(self)`` and exit with its result, or fail with the error translated. Never returns.

        While it runs, a signal or the end of the ansible run that started the module cancels it (module docstring).
        """
        try:
            result = self._run_cancellable(operation)
        except MissingDependencyError as err:
            failure = err.to_dict()
            if err.library:
                failure["msg"] = "%s %s" % (missing_required_lib(err.library), failure["msg"])
            self._fail(failure, traceback.format_exc())
        except ValidationFailedError as err:
            failure = err.to_dict()
            if isinstance(err.report, dict):
                for key in ("ok", "level", "checked", "damaged", "errors"):
                    if key in err.report:
                        failure[key] = err.report[key]
                for warning in err.report.get("warnings") or ():
                    self.module.warn(self._scrub(str(warning)))
            self._fail(failure, traceback.format_exc())
        except BlockvaultError as err:
            self._fail(err.to_dict(), traceback.format_exc())
        except Exception as err:  # pylint: disable=broad-except
            # Not an error the engine raised on purpose: a bug. Still report it with the same fields.
            self._fail({
                "msg": "Unexpected error %s: %s. This is a bug in blockvault.vsphere: please report it with the traceback "
                       "(-vvv; on ansible-core 2.19+ ANSIBLE_DISPLAY_TRACEBACK=error)." % (type(err).__name__, redact(str(err))),
                "error_class": type(err).__name__,
                "phase": None, "vm": None, "disk": None, "run_id": None,
            }, traceback.format_exc())
        if self.cancellation.requested:
            # the cancel came too late to stop the operation (its commit had started): it finished, so say so
            result = dict(result or {}, cancel="The run was %s too late to stop it: its work was done or being "
                                               "committed, so it finished and its result is kept."
                                               % self.cancellation.describe())
            self.module.warn(result["cancel"])
        self._exit(result)

    def _run_cancellable(self, operation):
        if not self.cancellable:
            return operation(self)
        cancellation = self.cancellation
        cancellation.install_signal_handlers()
        unwatch = None
        try:
            watch = ControllerWatch.of_this_process()
            if watch is not None:
                unwatch = cancellation.watch(watch)
            # the default: a cancel stops the operation where it is, unless it runs a cooperative section
            with cancellation.interruptible():
                return operation(self)
        finally:
            # the operation is over: a cancel from now on must not interrupt the reporting of its outcome
            with cancellation.cooperative():
                if unwatch is not None:
                    unwatch()
                cancellation.close()
                # a signal from now on ends the process as it would have before the run
                cancellation.restore_signal_handlers()

    def _scrub(self, value):
        # AnsibleModule masks no_log values on output too; this also covers our unit tests and future refactors.
        return remove_values(value, self.module.no_log_values)

    def _exit(self, result):
        result = dict(result or {})
        result["changed"] = bool(result.get("changed", False))
        # an operation's warnings (e.g. a restore point skipped because its manifest is damaged) are shown as
        # Ansible warnings, which also puts them in the result's ``warnings``; passing them to exit_json is deprecated
        for warning in result.pop("warnings", None) or ():
            self.module.warn(self._scrub(str(warning)))
        # an operation always says its before and after; the task shows them only when run with --diff
        diff = result.pop("diff", None)
        if self.diff_mode and diff:
            result["diff"] = diff
        self.module.exit_json(**self._scrub(result))

    def _fail(self, failure, formatted_traceback):
        failure = self._scrub(dict(failure))
        msg = failure.pop("msg")
        failure.pop("failed", None)
        failure.setdefault("changed", False)
        self.module.fail_json(msg=msg, exception=self._scrub(formatted_traceback), **failure)
