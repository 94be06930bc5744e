# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module wrapper of the collection's cluster modules (egress_apply, access_probe), shaped
like kubernetes.core's ``AnsibleK8SModule``; the one room under module_utils that imports Ansible.

For: ``ClusterModule`` - kubernetes.core's connection options (``AUTH_ARG_SPEC``, documented by
the doc fragment ``kubernetes.core.k8s_auth_options``) merged into the module's argument spec,
the secrets of an in-memory kubeconfig kept out of results and logs, the library checks
(``missing_required_lib``), the ``k8s_client.Client`` built by kubernetes.core's
``get_api_client`` (kubeconfig, context, host/api_key, ``K8S_AUTH_*`` variables and AWX
credentials behave as for ``kubernetes.core.k8s``), and ``ClusterModule.run``: the ONE place
where exceptions become ``fail_json``. Not for: what a module does with the cluster (apply/,
verify/runner.py) nor how requests are sent (k8s_client.py).

Why not ``AnsibleK8SModule`` itself: it exists in every kubernetes.core we accept (>= 3.0.0), but
it redacts an in-memory kubeconfig only from 5.4.2 and 6.3.0 on (3.x-5.0 neither mark it
``no_log`` nor redact it; 5.1-5.4.1 and 6.0-6.2 mark the whole option ``no_log``, which masks
every value in it, ``v1`` and ``default`` included, across the whole result), and it needs the
kubernetes library when it is built, while access_probe derives its matrix without it. This
wrapper behaves the same with each of them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshguard.egress.plugins.module_utils.apply.errors import ApplyError, failure_result
from ansible_collections.meshguard.egress.plugins.module_utils.k8s_client import (
    HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR, LIBRARY_FAULTS, Client, ClientError, K8sApiError, K8sLibraryError,
    library_version_problem)
from ansible_collections.meshguard.egress.plugins.module_utils.validation import InputError

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        AUTH_ARG_SPEC as _CORE_AUTH_ARG_SPEC)
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        get_api_client as _core_get_api_client)
    HAS_KUBERNETES_CORE = True
    KUBERNETES_CORE_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - kubernetes.core is a declared dependency
    _CORE_AUTH_ARG_SPEC = {}
    _core_get_api_client = None
    HAS_KUBERNETES_CORE = False
    KUBERNETES_CORE_IMPORT_ERROR = traceback.format_exc()

# Keys of a kubeconfig whose values are secrets (users[].user, auth-provider config, exec env
# values); every string below them is kept out of results and logs.
KUBECONFIG_SECRET_KEYS = frozenset((
    "token", "password", "client-key-data", "client-certificate-data", "certificate-authority-data",
    "id-token", "refresh-token", "access-token", "client-secret", "secret", "api_key"))


def connection_argument_spec():
    """kubernetes.core's connection options (a copy), ``kubeconfig`` marked ``no_log`` whatever
    the kubernetes.core version says, so AnsibleModule never logs it whole; ClusterModule then
    narrows the redaction to the kubeconfig's secrets."""
    spec = copy.deepcopy(_CORE_AUTH_ARG_SPEC)
    if "kubeconfig" in spec:
        spec["kubeconfig"]["no_log"] = True
    return spec


def auth_params(params):
    """The connection options out of a module's params (unset ones omitted)."""
    return dict((key, params.get(key)) for key in _CORE_AUTH_ARG_SPEC if params.get(key) is not None)


def kubeconfig_secrets(kubeconfig):
    """The secret strings of an in-memory kubeconfig (a dict); nothing for a path."""
    found = set()

    def walk(node, secret):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, secret or key in KUBECONFIG_SECRET_KEYS)
                if key == "env" and isinstance(value, list):  # exec plugin environment
                    walk([item.get("value") for item in value if isinstance(item, dict)], True)
        elif isinstance(node, list):
            for item in node:
                walk(item, secret)
        elif secret and isinstance(node, str) and node:
            found.add(node)
    if isinstance(kubeconfig, dict):
        walk(kubeconfig, False)
    return found


def _leaves(value):
    """The strings AnsibleModule adds to no_log_values for a no_log option holding `value`."""
    if isinstance(value, str):
        return set([value]) if value else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple, set)):
        return set().union(*[_leaves(item) for item in value]) if value else set()
    if value is None or isinstance(value, bool):
        return set()
    return set([str(value)])


def _other_no_log_values(spec, params):
    """The values of the no_log options other than kubeconfig (suboptions included)."""
    found = set()
    for name, option in spec.items():
        value = (params or {}).get(name)
        if name == "kubeconfig" or value is None:
            continue
        if option.get("no_log"):
            found |= _leaves(value)
        elif option.get("options"):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    found |= _other_no_log_values(option["options"], item)
    return found


def connect(params, timeout=None):
    """A ``Client`` on the connection the module's params (and ``K8S_AUTH_*`` variables) describe.

    Raises K8sLibraryError for a library too old or failing by itself, else ClientError when
    the configuration cannot be loaded or the server not reached."""
    problem = library_version_problem()
    if problem:
        raise K8sLibraryError(problem)
    try:
        # module=None: kubernetes.core's helper reads the options from keyword arguments (and
        # K8S_AUTH_* variables for unset ones). Its K8SClient proxies the kubernetes library's
        # DynamicClient (attribute `client`), which Client talks through.
        dynamic_client = _core_get_api_client(None, **auth_params(params)).client
    except LIBRARY_FAULTS as exc:
        raise K8sLibraryError("create the Kubernetes API client", exc)
    except Exception as exc:  # kubernetes.core's CoreException, ConfigException, urllib3 errors...
        raise ClientError("Could not create the Kubernetes API client: %s" % exc)
    return Client(dynamic_client, timeout)


class ClusterModule:
    """An AnsibleModule with kubernetes.core's connection options, for modules that talk to a cluster.

    ``check_k8s`` (as in AnsibleK8SModule): fail at once without the kubernetes library;
    without it the library is checked when ``client()`` is first called."""

    def __init__(self, argument_spec, supports_check_mode=False, check_k8s=True, **kwargs):
        spec = connection_argument_spec()
        spec.update(argument_spec)
        self._module = AnsibleModule(argument_spec=spec, supports_check_mode=supports_check_mode, **kwargs)
        self._narrow_kubeconfig_redaction(spec)
        if check_k8s:
            self.require_kubernetes()

    def _narrow_kubeconfig_redaction(self, spec):
        """Keep only the kubeconfig's secrets in no_log_values: a path is not a secret, and the
        names and URLs of a kubeconfig dict would otherwise be masked wherever they appear."""
        kubeconfig = self.params.get("kubeconfig")
        if kubeconfig is None:
            return
        secrets = kubeconfig_secrets(kubeconfig)
        harmless = _leaves(kubeconfig) - secrets - _other_no_log_values(spec, self.params)
        self._module.no_log_values.difference_update(harmless)
        self._module.no_log_values.update(secrets)

    @property
    def params(self):
        return self._module.params

    @property
    def check_mode(self):
        return self._module.check_mode

    @property
    def diff(self):
        return self._module._diff

    def warn(self, warning):
        self._module.warn(warning)

    def exit_json(self, **result):
        self._module.exit_json(**result)

    def fail_json(self, **result):
        self._module.fail_json(**result)

    def require_kubernetes(self):
        """Fail unless the kubernetes library and the kubernetes.core collection are there."""
        if not HAS_KUBERNETES:
            self.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
        if not HAS_KUBERNETES_CORE:
            self.fail_json(msg="the kubernetes.core collection is required (ansible-galaxy collection install "
                               "kubernetes.core)", exception=KUBERNETES_CORE_IMPORT_ERROR)

    def client(self):
        """A ``k8s_client.Client`` on the connection of the module's options."""
        self.require_kubernetes()
        return connect(self.params)

    def run(self, task):
        """``task(self)``'s result; its failures (and the client's) as fail_json."""
        try:
            return task(self)
        except ApplyError as exc:
            for warning in exc.partial.get("warnings", []):
                self.warn(warning)
            self.fail_json(msg=str(exc), **failure_result(exc))
        except InputError as exc:
            self.fail_json(msg=str(exc), errors=exc.errors)
        except (ClientError, ValueError) as exc:
            self.fail_json(msg=str(exc))
        except K8sLibraryError as exc:
            extra = {"exception": exc.traceback} if exc.traceback else {}
            self.fail_json(msg=str(exc), kubernetes_version=exc.version, **extra)
        except K8sApiError as exc:
            self.fail_json(msg=str(exc), status=exc.status, reason=exc.reason)
        return None  # not reached: fail_json exits
