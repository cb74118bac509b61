"""Drills on a running local plane: chaos scenarios, load helpers, and the conservation checks after them.

They drive the plane from outside, over its signed API (``infra.client``), as a client and an operator would;
the plane itself (``infra.local``) only emulates AWS and never imports them.
"""
