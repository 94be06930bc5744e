# -*- coding: utf-8 -*-
# Copyright: meshguard.egress developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The named, read-only record that ``Case`` (case.py) and ``Outcome`` (outcome.py) are made of.

A record is built with keywords only, its fields are attributes (``case.host``), and it also
reads as the plain mapping it replaces (``case["host"]``, ``dict(case)``, ``==`` with a dict):
the report reads result rows, a user's case and a recorded outcome by the same keys.
``as_dict()`` is the plain JSON form a module returns.

Not for: what a case or an outcome means (their own rooms say that).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping


class Record(Mapping):
    """Base of the verify records. Subclasses set ``FIELDS`` (also their ``__slots__``, in the
    order of the JSON form) and ``REQUIRED`` (True: every field must be given).

    A field that was not given reads ``None`` as an attribute and is absent from the mapping,
    as a key never set in a dict."""

    __slots__ = ()
    FIELDS = ()
    REQUIRED = True

    def __init__(self, **fields):
        unknown = sorted(set(fields) - set(self.FIELDS))
        missing = [f for f in self.FIELDS if f not in fields] if self.REQUIRED else []
        if unknown or missing:
            raise TypeError("%s: %s" % (type(self).__name__, "; ".join(
                (["unknown field %s" % ", ".join(unknown)] if unknown else [])
                + (["missing field %s" % ", ".join(missing)] if missing else []))))
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    @classmethod
    def of(cls, value):
        """`value` itself when it is a record of this class, else the record of a mapping of its fields."""
        return value if isinstance(value, cls) else cls(**value)

    def __setattr__(self, name, value):
        raise AttributeError("%s is read-only" % type(self).__name__)

    def __getattr__(self, name):
        # Only called when the slot was never set: an optional field that was not given.
        if name in type(self).FIELDS:
            return None
        raise AttributeError(name)

    def _given(self, name):
        try:
            object.__getattribute__(self, name)
        except AttributeError:
            return False
        return True

    def __getitem__(self, key):
        if key in type(self).FIELDS and self._given(key):
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self):
        return (name for name in self.FIELDS if self._given(name))

    def __len__(self):
        return sum(1 for dummy in self)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % (k, self[k]) for k in self))

    def __reduce__(self):
        # copy, deepcopy and pickle rebuild through the constructor (the slots are read-only)
        return _rebuild, (type(self), self.as_dict())

    def as_dict(self):
        """The plain dict of the given fields, in ``FIELDS`` order."""
        return dict((key, self[key]) for key in self)


def _rebuild(cls, fields):
    return cls(**fields)
