# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How long the property tests (hypothesis) run: two hypothesis profiles, picked by the
environment variable MESHGUARD_HYPOTHESIS_PROFILE and loaded by tests/unit/conftest.py.

  quick  (the default: `make test-unit`, plain pytest, and ansible-test units, which passes no
         environment through) one QUICK_SHARE-th of each property test's examples
  long   (`make test`, which CI runs) each property test's own number of examples, the N
         of its `@settings(max_examples=examples(N))`

The property tests are what made the unit tier slow (269 s on a fresh 2-core machine, 206 s of
it one test: test_security_invariant's exact-allow check, which evaluates every emitted
AuthorizationPolicy against up to ~10^5 requests per generated policy).

Not for anything but the number of examples: every other setting stays in each test's own
`@settings(...)`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from hypothesis import settings

PROFILE_ENV = "MESHGUARD_HYPOTHESIS_PROFILE"
QUICK = "quick"
LONG = "long"
QUICK_SHARE = 20
# for a property test that names no number of its own (hypothesis' default is 100)
QUICK_DEFAULT_EXAMPLES = 10


def load_profile(environ=None):
    """Register both profiles and load the one PROFILE_ENV names (quick when unset); an
    unknown name fails with hypothesis' own error."""
    environ = os.environ if environ is None else environ
    settings.register_profile(QUICK, max_examples=QUICK_DEFAULT_EXAMPLES)
    settings.register_profile(LONG)
    settings.load_profile(environ.get(PROFILE_ENV) or QUICK)


def examples(long_run):
    """max_examples of a property test whose full run is `long_run` examples: all of them
    under the long profile, one QUICK_SHARE-th (rounded up) otherwise."""
    if settings.get_current_profile_name() == LONG:
        return long_run
    return -(-long_run // QUICK_SHARE)
