"""The ZeroMQ edge: endpoints, the broker, the publisher agents embed, the receiver, replay.

The only package that imports zmq. `recorder.bus.publisher` loads no store or daemon module.
"""
