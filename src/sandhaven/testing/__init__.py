"""Test helpers shipped with Sandhaven, for its own tests and for app packagers:
real servers on real sockets, no mocks."""
