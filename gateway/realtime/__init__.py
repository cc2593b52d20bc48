"""Realtime (DESIGN §10): where events come from and who is waiting for them, per worker.

``events``: what an event is and how it is announced (the channel ``mwplu_events``). ``hub``:
the subscriptions of this worker and the fan-out, bounded per subscriber. ``sources``: the one
LISTEN connection (reconnected, with a catch-up read for what it missed) and the shared v1
poll. Events carry ids only; each subscriber reads the row again as itself.
"""

from gateway.realtime.events import CHANNEL, Event
from gateway.realtime.hub import Hub, SlowConsumer, Subscription

__all__ = ["CHANNEL", "Event", "Hub", "SlowConsumer", "Subscription"]
