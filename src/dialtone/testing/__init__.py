"""Fakes shipped with dialtone for its own tests and its users' (design.md §9 point 9).

:mod:`dialtone.testing.clock` has a clock that moves only when told;
:mod:`dialtone.testing.fakenet` wires SIP endpoints together over a fake network.
"""
