# -*- coding: utf-8 -*-
# Copyright: (c) 2026, blockvault.vsphere contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings the operations take: where vCenter is, where VDDK is, where the repository is.

Each layer owns its settings (``vsphere.settings``, ``vddk.settings``, ``repo.settings``); they are re-exported
here under the same names because the modules and the operations take all three together. They are plain,
immutable values built by the caller (an Ansible module, a test, a script) and validated once where they are
built, so every operation gets the same checks and the same error messages. Their ``repr`` never shows a secret.
"""

from __future__ import annotations

from ..repo.settings import RepositorySettings
from ..vddk.settings import VddkSettings
from ..vsphere.settings import VSphereSettings

__all__ = ["RepositorySettings", "VddkSettings", "VSphereSettings"]
