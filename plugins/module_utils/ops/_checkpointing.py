# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backup's side of checkpoints: start the recorder of a run, and the result fields of a resume.

The checkpoint of a run is named after the run whose snapshot is read: this run's own, or the interrupted run's
when it was adopted (so that a resumed run killed in turn is resumed again from everything done so far).
"""

from __future__ import annotations

from ..repo.checkpoint import Checkpoint, CheckpointRecorder, delete_checkpoint

__all__ = ["start_recorder", "resume_fields"]


def start_recorder(context, session, request, vm_key, planned, resume, parent):
    """Start the CheckpointRecorder of the run (every ``request.checkpoint_interval`` s) and return it.

    ``parent`` is the id of the restore point the run's incremental disks build on (None when there is none).
    Its ``close`` (stop, then remove the checkpoint) is on the run's ExitStack: a run that fails removes its
    snapshot on the way out, so its checkpoint could not be resumed; a killed run leaves both for the next run.
    With ``resume_max_age`` 0 nothing is written (the recorder gets no interval).
    """
    repository = context.repository
    incremental = any(item.mode == "incremental" for item in planned)
    template = Checkpoint(run_id=resume.run_id if resume is not None else context.run_id, vm_tag=repository.vm_tag(vm_key),
                          chunk_size=repository.chunk_size, max_age=float(request.resume_max_age),
                          created=resume.checkpoint.created if resume is not None else session.started, updated="",
                          parent=parent if incremental else None, lock_id=session.lock_id)
    disks = [(item.key.value, item.disk.capacity, item.mode, item.reason, item.base_change_id, item.transfer.index,
              item.transfer.done) for item in planned]
    interval = request.checkpoint_interval if request.resume_max_age > 0 else 0
    recorder = _ClosingRecorder(repository, session, template, disks, interval,
                                adopted=resume.checkpoint if resume is not None else None)
    context.stack.callback(recorder.close)
    recorder.start()
    return recorder


class _ClosingRecorder(CheckpointRecorder):
    """A CheckpointRecorder whose ``close`` also removes the checkpoint (the run's cleanup; idempotent)."""

    def close(self):
        self.stop()
        delete_checkpoint(self.repository, self.template.name)


def resume_fields(resume, declined):
    """The result's ``resumed`` ({from_run, bytes_left, bytes_total} or None), ``resume_declined`` ({from_run,
    reason} when a checkpoint was found and not adopted) and, on a resume, ``msg``."""
    fields = {"resumed": resume.result() if resume is not None else None, "resume_declined": declined}
    if resume is not None:
        fields["msg"] = resume.message()
    if declined:
        run = "interrupted run %s" % declined["from_run"] if declined["from_run"] else "an interrupted run"
        fields["msg"] = "did not resume %s: %s; started over" % (run, declined["reason"])
    return fields
