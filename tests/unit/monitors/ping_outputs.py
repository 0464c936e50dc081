"""Real stdout of iputils-ping 20221126 (Debian 12), captured on the dev box; the exit code
each run returned is next to it."""

from __future__ import annotations

# ping -n -c 3 -i 0.5 -W 1 127.0.0.1 in a namespace with lo up; exit 0
ALL_RECEIVED = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.204 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.040 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.043 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 1029ms
rtt min/avg/max/mdev = 0.040/0.095/0.204/0.076 ms
"""

# ping -n -c 4 -i 0.5 -W 1 127.0.0.1, lo set down 0.8 s in; exit 0 (iputils exits 1 only
# when nothing at all came back)
PARTIAL_LOSS = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.304 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.045 ms

--- 127.0.0.1 ping statistics ---
4 packets transmitted, 2 received, 50% packet loss, time 1556ms
rtt min/avg/max/mdev = 0.045/0.174/0.304/0.129 ms
"""

# ping -n -c 3 -i 0.5 -W 1 10.8.0.2 over a veth whose peer has no address; exit 1
ALL_LOST = """\
PING 10.8.0.2 (10.8.0.2) 56(84) bytes of data.

--- 10.8.0.2 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 1043ms

"""

# ping -n -c 5 -i 1 -W 1 192.0.2.77 (on-link, no such neighbour); exit 1
ALL_LOST_WITH_ERRORS = """\
PING 192.0.2.77 (192.0.2.77) 56(84) bytes of data.
From 192.0.2.2 icmp_seq=1 Destination Host Unreachable
From 192.0.2.2 icmp_seq=2 Destination Host Unreachable
From 192.0.2.2 icmp_seq=3 Destination Host Unreachable

--- 192.0.2.77 ping statistics ---
5 packets transmitted, 0 received, +3 errors, 100% packet loss, time 4082ms
pipe 4
"""

# ping -n -c 2 -i 0 127.0.0.1 as root: the rtt line grows an ipg/ewma part; exit 0
ZERO_INTERVAL = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.017 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.007 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.007/0.012/0.017/0.005 ms, ipg/ewma 0.054/0.015 ms
"""

# Errors before any probe: stdout empty or just the header, the reason on stderr; exit 2.
UNKNOWN_HOST_STDERR = "ping: no-such-host.invalid: Name or service not known\n"  # stdout ""
NO_ROUTE_STDERR = "ping: connect: Network is unreachable\n"  # 127.0.0.1 with lo down; stdout ""
CANNOT_FLOOD_STDOUT = "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n"  # -i 0.001 as non-root
CANNOT_FLOOD_STDERR = "ping: cannot flood; minimal interval allowed for user is 2ms\n"
